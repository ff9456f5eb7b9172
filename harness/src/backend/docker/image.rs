//! Which image runs the nodes. The default is the official `postgres:<major>`; on machines whose
//! Docker engine cannot reach a registry, `scripts/build-image.sh` builds an equivalent
//! `pgrehearse/postgres:<major>` locally, and this picks it up. `PGREHEARSE_IMAGE` names an
//! image explicitly: that one is used or the run does not start.

use futures::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::CreateImageOptions;

use crate::error::{Error, Result};
use crate::pg::PgVersion;

/// The image chosen for a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageChoice {
    /// Repository name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// PostgreSQL version inside.
    pub version: PgVersion,
    /// How it was found ("local image", "pulled", "PGREHEARSE_IMAGE").
    pub source: String,
}

impl ImageChoice {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

/// Why an image's PostgreSQL version could not be read.
enum Unreadable {
    /// No such image on this machine.
    Absent,
    /// The engine refused or failed.
    Engine(String),
    /// The image says nothing about its PostgreSQL version.
    NoVersion,
}

async fn inspect(docker: &Docker, reference: &str) -> Result<PgVersion, Unreadable> {
    let img = docker.inspect_image(reference).await.map_err(|e| match e {
        testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        } => Unreadable::Absent,
        e => Unreadable::Engine(e.to_string()),
    })?;
    let cfg = img.config.ok_or(Unreadable::NoVersion)?;
    if let Some(v) = cfg
        .labels
        .as_ref()
        .and_then(|l| l.get("org.pgrehearse.pg-version"))
        .and_then(|t| PgVersion::parse(t))
    {
        return Ok(v);
    }
    // The official image says PG_VERSION=17.2-1.pgdg120+1.
    let env = cfg.env.unwrap_or_default();
    let v = env
        .iter()
        .find_map(|e| e.strip_prefix("PG_VERSION="))
        .ok_or(Unreadable::NoVersion)?;
    PgVersion::parse(&format!(
        "postgres (PostgreSQL) {}",
        v.split('-').next().unwrap_or(v)
    ))
    .ok_or(Unreadable::NoVersion)
}

/// Split an image reference into the name and tag that testcontainers joins back with ':'.
/// The tag is what follows the last ':' after the last '/' (`registry:5000/img` has none, so it
/// is `latest`); a digest (`img@sha256:…`) is kept whole across the two halves.
fn split_reference(r: &str) -> Option<(String, String)> {
    let r = r.trim();
    if r.is_empty() || r.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, tag) = if let Some((name, digest)) = r.split_once('@') {
        let (algo, hex) = digest.split_once(':')?;
        (format!("{name}@{algo}"), hex.to_string())
    } else {
        match r.rfind(':') {
            Some(i) if !r[i + 1..].contains('/') => (r[..i].to_string(), r[i + 1..].to_string()),
            _ => (r.to_string(), "latest".to_string()),
        }
    };
    let first = name.split('@').next().unwrap_or_default();
    (!first.is_empty() && !tag.is_empty() && !first.ends_with('/')).then_some((name, tag))
}

/// Pull `reference` from its registry.
async fn pull(docker: &Docker, reference: &str) -> std::result::Result<(), String> {
    // The tag (or digest) travels inside from_image: an empty tag would pull every tag.
    let opts = CreateImageOptions {
        from_image: Some(reference.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), None, None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The image `PGREHEARSE_IMAGE` names, exactly: present (or pulled) and of PostgreSQL `major`,
/// or an environment error saying what to do.
async fn explicit_image(docker: &Docker, value: &str, major: u32) -> Result<ImageChoice> {
    let unset = "or unset PGREHEARSE_IMAGE to use postgres:<major> or pgrehearse/postgres:<major>";
    let (name, tag) = split_reference(value).ok_or_else(|| {
        Error::environment(format!(
            "PGREHEARSE_IMAGE={value:?} is not an image reference"
        ))
        .with_hint(format!(
            "set it to name[:tag] (e.g. pgrehearse/postgres:{major}), {unset}"
        ))
    })?;
    let reference = format!("{name}:{tag}");
    let mut source = "PGREHEARSE_IMAGE".to_string();
    let mut found = inspect(docker, &reference).await;
    if matches!(found, Err(Unreadable::Absent)) {
        if let Err(e) = pull(docker, &reference).await {
            return Err(Error::environment(format!(
                "PGREHEARSE_IMAGE names {reference}, which is not on this machine and cannot be pulled: {e}"
            ))
            .with_hint(format!(
                "build or load that image (scripts/build-image.sh {major} builds pgrehearse/postgres:{major}), fix the name, {unset}"
            )));
        }
        source.push_str(", pulled");
        found = inspect(docker, &reference).await;
    }
    let version = match found {
        Ok(v) => v,
        Err(Unreadable::Absent) => {
            return Err(Error::environment(format!(
                "PGREHEARSE_IMAGE names {reference}, which is still not on this machine after pulling it"
            ))
            .with_hint(format!("fix the name, {unset}")));
        }
        Err(Unreadable::Engine(e)) => {
            return Err(Error::environment(format!(
                "cannot inspect {reference} (PGREHEARSE_IMAGE): {e}"
            ))
            .with_hint("check that the Docker engine answers (docker image inspect)"));
        }
        Err(Unreadable::NoVersion) => {
            return Err(Error::environment(format!(
                "cannot tell which PostgreSQL {reference} (PGREHEARSE_IMAGE) carries: it has neither the label org.pgrehearse.pg-version nor a PG_VERSION environment variable"
            ))
            .with_hint(format!(
                "label it (LABEL org.pgrehearse.pg-version={major}.0 in its Dockerfile), {unset}"
            )));
        }
    };
    if version.major != major {
        return Err(Error::environment(format!(
            "{reference} (PGREHEARSE_IMAGE) has PostgreSQL {version}, the run asks for {major}"
        ))
        .with_hint(format!(
            "name a PostgreSQL {major} image in PGREHEARSE_IMAGE, set pg_version = {} in the scenario's [chain], {unset}",
            version.major
        )));
    }
    check(
        ImageChoice {
            name,
            tag,
            version,
            source,
        },
        major,
    )
}

/// The image for PostgreSQL `major`: `PGREHEARSE_IMAGE` when set (and only it), else
/// `postgres:<major>` or `pgrehearse/postgres:<major>` present locally, else a pulled
/// `postgres:<major>`.
///
/// # Errors
/// Environment error with the build command when no image exists and none can be pulled, or
/// when the image `PGREHEARSE_IMAGE` names is absent, unreadable or of another major.
pub async fn pick_image(docker: &Docker, major: u32) -> Result<ImageChoice> {
    if let Ok(r) = std::env::var("PGREHEARSE_IMAGE") {
        return explicit_image(docker, &r, major).await;
    }
    let candidates = [
        ("postgres", "official image, present locally"),
        (
            "pgrehearse/postgres",
            "built locally by scripts/build-image.sh",
        ),
    ];
    for (name, source) in candidates {
        if let Ok(version) = inspect(docker, &format!("{name}:{major}")).await {
            return check(
                ImageChoice {
                    name: name.into(),
                    tag: major.to_string(),
                    version,
                    source: source.into(),
                },
                major,
            );
        }
    }
    // Nothing local: try the registry for the official image.
    let pulled = pull(docker, &format!("postgres:{major}")).await;
    if pulled.is_ok()
        && let Ok(version) = inspect(docker, &format!("postgres:{major}")).await
    {
        return check(
            ImageChoice {
                name: "postgres".into(),
                tag: major.to_string(),
                version,
                source: "pulled".into(),
            },
            major,
        );
    }
    Err(Error::environment(format!(
        "no PostgreSQL {major} image: neither postgres:{major} nor pgrehearse/postgres:{major} exists locally, and pulling postgres:{major} failed ({})",
        pulled.err().unwrap_or_else(|| "no image after pull".into())
    ))
    .with_hint(if major == 16 {
        "Debian carries no PostgreSQL 16 to build an image from: use 17 or 18 here, or a machine whose engine can pull postgres:16".to_string()
    } else {
        format!("build one without a registry: sudo scripts/build-image.sh {major}")
    }))
}

fn check(img: ImageChoice, major: u32) -> Result<ImageChoice> {
    if img.version.major < crate::pg::MIN_MAJOR {
        return Err(Error::environment(format!(
            "image {} has PostgreSQL {}: logical decoding on a standby needs 16 or later",
            img.reference(),
            img.version
        )));
    }
    if img.version.major != major {
        tracing::warn!(
            "image {} has PostgreSQL {}, the scenario asks for {major}",
            img.reference(),
            img.version
        );
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(r: &str) -> Option<(String, String)> {
        split_reference(r)
    }

    #[test]
    fn an_image_reference_splits_at_the_tag_not_at_a_registry_port() {
        let pair = |n: &str, t: &str| Some((n.to_string(), t.to_string()));
        assert_eq!(split("postgres:17"), pair("postgres", "17"));
        assert_eq!(split("postgres"), pair("postgres", "latest"));
        assert_eq!(
            split("registry:5000/img"),
            pair("registry:5000/img", "latest")
        );
        assert_eq!(
            split("registry:5000/team/img:17.2"),
            pair("registry:5000/team/img", "17.2")
        );
        // A digest survives testcontainers joining name and tag with ':'.
        let (n, t) = split("img@sha256:abc123").unwrap();
        assert_eq!(format!("{n}:{t}"), "img@sha256:abc123");
        for bad in [
            "",
            "  ",
            ":17",
            "img:",
            "registry:5000/",
            "a b:1",
            "img@sha256",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }
}
