//! Which image runs the nodes. The default is the official `postgres:<major>`: present locally,
//! else pulled. On machines whose Docker engine cannot reach a registry, `scripts/build-image.sh`
//! builds an equivalent `pgrehearse/postgres:<major>` locally, and this falls back to it.
//! `PGREHEARSE_IMAGE` names an image explicitly: that one is used or the run does not start.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::CreateImageOptions;

use crate::error::{Error, Result};
use crate::pg::PgVersion;

/// The official image's repository.
const OFFICIAL: &str = "postgres";
/// The repository `scripts/build-image.sh` builds into.
const BUILT: &str = "pgrehearse/postgres";

/// How long a registry may take to answer a pull at all: a reachable one answers within
/// seconds, while one whose packets are dropped would hold the run for minutes.
const FIRST_ANSWER: Duration = Duration::from_secs(10);
/// How long a pull that did start may go without any progress message (a large layer still
/// sends some).
const STALL: Duration = Duration::from_secs(60);
/// How long a failed pull of the official image is remembered: within it, a run that has the
/// built image uses it without asking the registry again.
const REMEMBER: Duration = Duration::from_secs(10 * 60);

/// The image chosen for a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageChoice {
    /// Repository name.
    pub name: String,
    /// Tag.
    pub tag: String,
    /// PostgreSQL version inside.
    pub version: PgVersion,
    /// How it was found ("official image, present locally", "official image, pulled", "built
    /// locally by scripts/build-image.sh", "PGREHEARSE_IMAGE").
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

/// What choosing an image asks of the Docker engine; the tests answer with a fake.
#[async_trait::async_trait]
trait Engine: Sync {
    /// The PostgreSQL version image `reference` carries.
    async fn inspect(&self, reference: &str) -> Result<PgVersion, Unreadable>;
    /// Pull `reference` from its registry, within bounded waits.
    async fn pull(&self, reference: &str) -> std::result::Result<(), String>;
}

#[async_trait::async_trait]
impl Engine for Docker {
    async fn inspect(&self, reference: &str) -> Result<PgVersion, Unreadable> {
        let img = self.inspect_image(reference).await.map_err(|e| match e {
            testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            } => Unreadable::Absent,
            e => Unreadable::Engine(e.to_string()),
        })?;
        let cfg = img.config.ok_or(Unreadable::NoVersion)?;
        version_of(cfg.labels.as_ref(), cfg.env.as_deref().unwrap_or_default())
            .ok_or(Unreadable::NoVersion)
    }

    async fn pull(&self, reference: &str) -> std::result::Result<(), String> {
        pull(self, reference).await
    }
}

/// The PostgreSQL version an image declares: the label `scripts/build-image.sh` sets, else the
/// official image's `PG_VERSION=17.2-1.pgdg120+1` environment variable.
fn version_of(
    labels: Option<&std::collections::HashMap<String, String>>,
    env: &[String],
) -> Option<PgVersion> {
    if let Some(v) = labels
        .and_then(|l| l.get("org.pgrehearse.pg-version"))
        .and_then(|t| PgVersion::parse(t))
    {
        return Some(v);
    }
    let v = env.iter().find_map(|e| e.strip_prefix("PG_VERSION="))?;
    // The Debian revision after '-' is not part of PostgreSQL's version.
    let upstream = v.split('-').next().unwrap_or(v);
    PgVersion::parse(&format!("postgres (PostgreSQL) {upstream}"))
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

/// Pull `reference` from its registry. Bounded: no answer within [`FIRST_ANSWER`], or no
/// progress for [`STALL`], fails it (dropping the request ends the engine's pull).
async fn pull(docker: &Docker, reference: &str) -> std::result::Result<(), String> {
    // The tag (or digest) travels inside from_image: an empty tag would pull every tag.
    let opts = CreateImageOptions {
        from_image: Some(reference.to_string()),
        ..Default::default()
    };
    let mut stream = docker.create_image(Some(opts), None, None);
    let mut answered = false;
    loop {
        let wait = if answered { STALL } else { FIRST_ANSWER };
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(None) => return Ok(()),
            Ok(Some(item)) => item.map_err(|e| e.to_string())?,
            Err(_) if answered => {
                return Err(format!(
                    "the pull made no progress for {} s",
                    wait.as_secs()
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the registry did not answer within {} s",
                    wait.as_secs()
                ));
            }
        };
        answered = true;
    }
}

/// The image `PGREHEARSE_IMAGE` names, exactly: present (or pulled) and of PostgreSQL `major`,
/// or an environment error saying what to do.
async fn explicit_image(docker: &impl Engine, value: &str, major: u32) -> Result<ImageChoice> {
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
    let mut found = docker.inspect(&reference).await;
    if matches!(found, Err(Unreadable::Absent)) {
        if let Err(e) = docker.pull(&reference).await {
            return Err(Error::environment(format!(
                "PGREHEARSE_IMAGE names {reference}, which is not on this machine and cannot be pulled: {e}"
            ))
            .with_hint(format!(
                "build or load that image (scripts/build-image.sh {major} builds pgrehearse/postgres:{major}), fix the name, {unset}"
            )));
        }
        source.push_str(", pulled");
        found = docker.inspect(&reference).await;
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

/// The image for PostgreSQL `major`: `PGREHEARSE_IMAGE` when set (and only it), else the
/// official `postgres:<major>` present locally, else pulled, else `pgrehearse/postgres:<major>`
/// built locally. Says which, and why, in one line.
///
/// # Errors
/// Environment error with the build command when no image exists and none can be pulled, or
/// when the image `PGREHEARSE_IMAGE` names is absent, unreadable or of another major.
pub async fn pick_image(docker: &Docker, major: u32) -> Result<ImageChoice> {
    let (img, why) = match std::env::var("PGREHEARSE_IMAGE") {
        Ok(r) => {
            let img = explicit_image(docker, &r, major).await?;
            let why = format!("named by {}", img.source);
            (img, why)
        }
        Err(_) => default_image(docker, major, &PullMemo::in_cache(major)).await?,
    };
    tracing::info!("image {}: {why}", img.reference());
    Ok(img)
}

/// The default image for `major` (see [`pick_image`]) and why it was chosen.
async fn default_image(
    docker: &impl Engine,
    major: u32,
    memo: &PullMemo,
) -> Result<(ImageChoice, String)> {
    let official = format!("{OFFICIAL}:{major}");
    let chosen = |name: &str, version: PgVersion, source: &str, why: String| {
        let img = ImageChoice {
            name: name.into(),
            tag: major.to_string(),
            version,
            source: source.into(),
        };
        check(img, major).map(|img| (img, why))
    };
    const PRESENT: &str = "official image, present locally";
    const PULLED: &str = "official image, pulled";
    const BUILT_HERE: &str = "built locally by scripts/build-image.sh";
    if let Ok(v) = docker.inspect(&official).await {
        return chosen(OFFICIAL, v, PRESENT, format!("the {PRESENT}"));
    }
    let built = docker.inspect(&format!("{BUILT}:{major}")).await.ok();
    let now = SystemTime::now();
    // Asking a registry that failed a moment ago again would only delay a run that has its
    // fallback; without one, asking costs nothing worth saving.
    if let (Some(v), Some((ago, reason))) = (&built, memo.recent(now)) {
        let why = format!(
            "{official} is not on this machine and pulling it failed {} ago ({reason}); the registry is not asked again for {} (remove {} to ask now)",
            roughly(ago),
            roughly(REMEMBER.saturating_sub(ago)),
            memo.path.display()
        );
        return chosen(BUILT, v.clone(), BUILT_HERE, why);
    }
    let failure = match docker.pull(&official).await {
        Ok(()) => match docker.inspect(&official).await {
            Ok(v) => {
                memo.forget();
                let why = format!("the {PULLED} (it was not on this machine)");
                return chosen(OFFICIAL, v, PULLED, why);
            }
            Err(_) => "pulled, but the engine cannot tell its PostgreSQL version".to_string(),
        },
        Err(e) => {
            memo.remember(now, &e);
            e
        }
    };
    match built {
        Some(v) => chosen(
            BUILT,
            v,
            BUILT_HERE,
            format!("{official} is not on this machine and cannot be pulled ({failure})"),
        ),
        None => Err(Error::environment(format!(
            "no PostgreSQL {major} image: {official} is not on this machine and cannot be pulled ({failure}), and {BUILT}:{major} was not built here either"
        ))
        .with_hint(if major == 16 {
            "Debian carries no PostgreSQL 16 to build an image from: use 17 or 18 here, or a machine whose engine can pull postgres:16".to_string()
        } else {
            format!("build one without a registry: sudo scripts/build-image.sh {major}")
        })),
    }
}

/// "42 s", "7 min" (to the nearest minute): the memo keeps whole seconds, so no finer.
fn roughly(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s => format!("{} min", (s + 30) / 60),
    }
}

/// A failed pull of the official image, remembered in the cache folder for [`REMEMBER`] as
/// `<unix seconds> <why>`.
struct PullMemo {
    path: PathBuf,
}

impl PullMemo {
    /// The memo of `postgres:<major>`'s pulls: one tag's failure (not published yet, say) says
    /// nothing about another's.
    fn in_cache(major: u32) -> PullMemo {
        PullMemo {
            path: crate::pg::cache_dir().join(format!("registry-unreachable-{major}")),
        }
    }

    /// How long ago the remembered failure was, and why, while it is recent. A time ahead of
    /// `now` (the clock was set back) is not trusted.
    fn recent(&self, now: SystemTime) -> Option<(Duration, String)> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let (secs, why) = text.trim_end().split_once(' ')?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.parse().ok()?);
        let ago = now.duration_since(at).ok()?;
        (ago < REMEMBER).then(|| (ago, why.to_string()))
    }

    /// Best effort: without the memo the next run only asks the registry again.
    fn remember(&self, now: SystemTime, why: &str) {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let line = format!("{secs} {}\n", why.replace('\n', " "));
        let res = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&self.path, line));
        if let Err(e) = res {
            tracing::debug!("cannot write {}: {e}", self.path.display());
        }
    }

    fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
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
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// An engine holding `local` images, whose registry serves any image or none.
    struct Fake {
        local: Mutex<HashMap<String, PgVersion>>,
        reachable: bool,
        pulls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(local: &[&str], reachable: bool) -> Fake {
            let local = local.iter().map(|r| (r.to_string(), tagged(r))).collect();
            Fake {
                local: Mutex::new(local),
                reachable,
                pulls: Mutex::default(),
            }
        }

        fn pulls(&self) -> usize {
            self.pulls.lock().unwrap().len()
        }
    }

    /// The version an image tagged with its major carries.
    fn tagged(reference: &str) -> PgVersion {
        let (_, tag) = split_reference(reference).unwrap();
        PgVersion::parse(&format!("postgres (PostgreSQL) {tag}.4")).unwrap()
    }

    #[async_trait::async_trait]
    impl Engine for Fake {
        async fn inspect(&self, reference: &str) -> Result<PgVersion, Unreadable> {
            let local = self.local.lock().unwrap();
            local.get(reference).cloned().ok_or(Unreadable::Absent)
        }
        async fn pull(&self, reference: &str) -> std::result::Result<(), String> {
            self.pulls.lock().unwrap().push(reference.to_string());
            if !self.reachable {
                return Err("lookup registry-1.docker.io: no such host".into());
            }
            let v = tagged(reference);
            self.local.lock().unwrap().insert(reference.to_string(), v);
            Ok(())
        }
    }

    fn memo_in(dir: &tempfile::TempDir) -> PullMemo {
        PullMemo {
            path: dir.path().join("cache/registry-unreachable"),
        }
    }

    #[tokio::test]
    async fn the_official_image_present_locally_wins_without_asking_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::new(&["postgres:17", "pgrehearse/postgres:17"], true);
        let (img, why) = default_image(&fake, 17, &memo_in(&dir)).await.unwrap();
        assert_eq!(img.reference(), "postgres:17");
        assert_eq!(fake.pulls(), 0);
        assert!(why.contains("present locally"), "{why}");
    }

    #[tokio::test]
    async fn a_reachable_registry_gives_the_official_image_even_where_one_was_built() {
        let dir = tempfile::tempdir().unwrap();
        let memo = memo_in(&dir);
        // A failure long past does not keep the registry from being asked.
        let old = SystemTime::now() - REMEMBER - Duration::from_secs(1);
        memo.remember(old, "timed out");
        let fake = Fake::new(&["pgrehearse/postgres:17"], true);
        let (img, why) = default_image(&fake, 17, &memo).await.unwrap();
        assert_eq!(img.reference(), "postgres:17");
        assert_eq!(img.source, "official image, pulled");
        assert!(why.contains("pulled"), "{why}");
        assert!(!memo.path.exists(), "a pull that worked clears the memo");
    }

    #[tokio::test]
    async fn without_a_registry_the_built_image_is_used_and_the_failure_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let memo = memo_in(&dir);
        let fake = Fake::new(&["pgrehearse/postgres:17"], false);
        let (img, why) = default_image(&fake, 17, &memo).await.unwrap();
        assert_eq!(img.reference(), "pgrehearse/postgres:17");
        assert!(why.contains("cannot be pulled (lookup"), "{why}");
        assert_eq!(fake.pulls(), 1);
        // The next run does not ask again, and says where the memo is.
        let (img, why) = default_image(&fake, 17, &memo).await.unwrap();
        assert_eq!(img.reference(), "pgrehearse/postgres:17");
        assert_eq!(fake.pulls(), 1, "{why}");
        assert!(
            why.contains("no such host") && why.contains(" s ago"),
            "{why}"
        );
        assert!(why.contains("not asked again for 10 min"), "{why}");
        assert!(why.contains(&memo.path.display().to_string()), "{why}");
    }

    #[tokio::test]
    async fn with_no_image_at_all_the_registry_is_asked_despite_the_memo() {
        let dir = tempfile::tempdir().unwrap();
        let memo = memo_in(&dir);
        memo.remember(SystemTime::now(), "timed out");
        let fake = Fake::new(&[], false);
        let e = default_image(&fake, 17, &memo).await.unwrap_err();
        assert_eq!(fake.pulls(), 1);
        let msg = e.to_string();
        assert!(
            msg.contains("postgres:17") && msg.contains("pgrehearse/postgres:17"),
            "{msg}"
        );
        assert!(e.hint().unwrap().contains("scripts/build-image.sh 17"));
        assert_eq!(e.exit_code(), 2);
        let e = default_image(&Fake::new(&[], false), 16, &memo)
            .await
            .unwrap_err();
        assert!(e.hint().unwrap().contains("no PostgreSQL 16"), "{e:?}");
    }

    #[test]
    fn a_memo_from_the_future_or_unreadable_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let memo = memo_in(&dir);
        let now = SystemTime::now();
        assert!(memo.recent(now).is_none());
        memo.remember(now + Duration::from_secs(3600), "x");
        assert!(memo.recent(now).is_none());
        memo.remember(now, "two\nlines");
        let (ago, why) = memo.recent(now + Duration::from_secs(5)).unwrap();
        assert_eq!((ago.as_secs(), why.as_str()), (5, "two lines"));
        std::fs::write(&memo.path, "soon no such host").unwrap();
        assert!(memo.recent(now).is_none());
    }

    #[test]
    fn the_postgresql_version_is_read_from_the_label_or_the_official_images_environment() {
        let env = |vars: &[&str]| vars.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let v = |major, minor| Some(PgVersion { major, minor });
        // The official image: Debian's revision after the upstream version.
        let official = env(&[
            "PATH=/usr/local/bin",
            "PG_MAJOR=17",
            "PG_VERSION=17.2-1.pgdg120+1",
        ]);
        assert_eq!(version_of(None, &official), v(17, 2));
        assert_eq!(version_of(None, &env(&["PG_VERSION=18.1"])), v(18, 1));
        // A pre-release has no minor yet.
        assert_eq!(
            version_of(None, &env(&["PG_VERSION=18~beta1-1.pgdg120+1"])),
            v(18, 0)
        );
        // The label of scripts/build-image.sh wins over the environment.
        let labels: HashMap<String, String> =
            [("org.pgrehearse.pg-version".to_string(), "17.6".to_string())].into();
        assert_eq!(version_of(Some(&labels), &official), v(17, 6));
        // Nothing that says which PostgreSQL: no version rather than a guess.
        assert_eq!(version_of(None, &env(&["PG_MAJOR=17"])), None);
        assert_eq!(version_of(None, &env(&["PG_VERSION="])), None);
        assert_eq!(version_of(Some(&HashMap::new()), &[]), None);
    }

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
