//! Which image runs the nodes. The default is the official `postgres:<major>`; on machines whose
//! Docker engine cannot reach a registry, `scripts/build-image.sh` builds an equivalent
//! `pgrehearse/postgres:<major>` locally, and this picks it up.

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

async fn inspect(docker: &Docker, reference: &str) -> Option<PgVersion> {
    let img = docker.inspect_image(reference).await.ok()?;
    let cfg = img.config?;
    if let Some(v) = cfg
        .labels
        .as_ref()
        .and_then(|l| l.get("org.pgrehearse.pg-version"))
        .and_then(|t| PgVersion::parse(t))
    {
        return Some(v);
    }
    // The official image says PG_VERSION=17.2-1.pgdg120+1.
    let env = cfg.env.unwrap_or_default();
    let v = env.iter().find_map(|e| e.strip_prefix("PG_VERSION="))?;
    PgVersion::parse(&format!(
        "postgres (PostgreSQL) {}",
        v.split('-').next().unwrap_or(v)
    ))
}

/// The image for PostgreSQL `major`.
///
/// # Errors
/// Environment error with the build command when no image exists and none can be pulled.
pub async fn pick_image(docker: &Docker, major: u32) -> Result<ImageChoice> {
    let mut candidates: Vec<(String, String, String)> = Vec::new();
    if let Ok(r) = std::env::var("PGREHEARSE_IMAGE") {
        let (n, t) = r.rsplit_once(':').unwrap_or((r.as_str(), "latest"));
        candidates.push((n.to_string(), t.to_string(), "PGREHEARSE_IMAGE".into()));
    }
    candidates.push((
        "postgres".into(),
        major.to_string(),
        "official image, present locally".into(),
    ));
    candidates.push((
        "pgrehearse/postgres".into(),
        major.to_string(),
        "built locally by scripts/build-image.sh".into(),
    ));
    for (name, tag, source) in &candidates {
        if let Some(version) = inspect(docker, &format!("{name}:{tag}")).await {
            return check(
                ImageChoice {
                    name: name.clone(),
                    tag: tag.clone(),
                    version,
                    source: source.clone(),
                },
                major,
            );
        }
    }
    // Nothing local: try the registry for the official image.
    let opts = CreateImageOptions {
        from_image: Some("postgres".into()),
        tag: Some(major.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), None, None);
    let mut pull_error = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            pull_error = Some(e.to_string());
            break;
        }
    }
    if pull_error.is_none()
        && let Some(version) = inspect(docker, &format!("postgres:{major}")).await
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
        pull_error.unwrap_or_else(|| "no image after pull".into())
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
