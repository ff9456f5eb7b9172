//! Running commands inside a container (bollard exec), with stdin when needed: passwords and
//! scripts go through stdin, never through a command line that `docker inspect` would show.

use futures::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use testcontainers::bollard::models::ContainerCreateBody;
use testcontainers::bollard::query_parameters::CreateContainerOptions;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::wait::{Check, wait_for};

/// How long the engine may take to report an exec's exit code once its output has ended.
const EXIT_CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a finished exec returned.
#[derive(Debug, Default)]
pub struct ExecOutput {
    /// Exit code (-1 when unknown).
    pub code: i64,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stderr as text, secrets redacted.
    pub fn stderr_text(&self) -> String {
        crate::secret::redact(String::from_utf8_lossy(&self.stderr).trim())
    }
}

/// What the engine says of `container`'s state: running (paused counts as running), paused.
/// (false, false) when it cannot be asked or the container is gone.
pub async fn running_paused(docker: &Docker, container: &str) -> (bool, bool) {
    let state = docker
        .inspect_container(container, None)
        .await
        .ok()
        .and_then(|c| c.state);
    state.map_or((false, false), |s| {
        (s.running.unwrap_or(false), s.paused.unwrap_or(false))
    })
}

/// What an exec reads on stdin.
pub type Input = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Run `cmd` in `container` as `user`, feeding `stdin`, and wait for it.
///
/// # Errors
/// Environment error when Docker refuses the exec (the container is gone or stopped).
pub async fn run(
    docker: &Docker,
    container: &str,
    user: &str,
    cmd: &[String],
    env: &[String],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput> {
    let input = stdin.map(|b| Box::new(std::io::Cursor::new(b.to_vec())) as Input);
    run_reading(docker, container, user, cmd, env, input).await
}

/// [`run`], streaming stdin from a reader while the output is read: a command that writes
/// much before it has read all its input must not block on a full pipe.
///
/// # Errors
/// As [`run`].
pub async fn run_reading(
    docker: &Docker,
    container: &str,
    user: &str,
    cmd: &[String],
    env: &[String],
    stdin: Option<Input>,
) -> Result<ExecOutput> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::environment(format!("{what} in container {container}: {e}"))
    };
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdin: Some(stdin.is_some()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                user: Some(user.to_string()),
                env: Some(env.to_vec()),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| fail("cannot exec", &e))?;
    let started = docker
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: false,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| fail("cannot start exec", &e))?;
    let mut out = ExecOutput::default();
    if let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    {
        let feed = async move {
            let mut fed = Ok(());
            if let Some(mut data) = stdin {
                fed = crate::node::feed(&mut data, &mut input).await;
                let _ = input.shutdown().await;
            }
            drop(input);
            fed
        };
        let read = async {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| fail("reading exec output", &e))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.stdout.extend_from_slice(&message)
                    }
                    LogOutput::StdErr { message } => out.stderr.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<_, Error>(())
        };
        let (fed, read) = tokio::join!(feed, read);
        read?;
        fed.map_err(|e| fail("reading the command's input", &e))?;
    }
    // The engine may report the exit code a moment after the output ends: ask until it does.
    let what = format!(
        "the exit code of {} in {container}",
        cmd.first().map_or("a command", String::as_str)
    );
    out.code = wait_for(&what, EXIT_CODE_WAIT, || async {
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| fail("cannot inspect exec", &e))?;
        Ok(match inspect.exit_code {
            Some(code) => Check::Done(code),
            None => Check::NotYet(format!("running: {:?}", inspect.running)),
        })
    })
    .await?;
    Ok(out)
}

/// Run `cmd` as `user` in a short-lived container made from `body` (called `name`, else one
/// Docker picks), then remove it whatever happened. Errors read "`what`: ...". The body's
/// labels should name the run, so teardown and `down --all` find the container should removing
/// it fail here.
///
/// # Errors
/// Environment error when the container cannot be created or started, or the exec fails.
pub async fn run_throwaway(
    docker: &Docker,
    name: Option<&str>,
    mut body: ContainerCreateBody,
    user: &str,
    cmd: &[String],
    what: &str,
) -> Result<ExecOutput> {
    let fail = |e: &dyn std::fmt::Display| Error::environment(format!("{what}: {e}"));
    let opts = name.map(|n| CreateContainerOptions {
        name: Some(n.to_string()),
        ..Default::default()
    });
    // Armed before the create: dropped while Docker is creating it, the container is found by
    // this label, since its id never reached us.
    let tag = format!("{:016x}", rand::random::<u64>());
    body.labels
        .get_or_insert_with(Default::default)
        .insert(THROWAWAY_LABEL.to_string(), tag.clone());
    let mut discard = Discard { tag, id: None };
    let id = docker
        .create_container(opts, body)
        .await
        .map_err(|e| fail(&e))?
        .id;
    discard.id = Some(id.clone());
    let res = async {
        docker
            .start_container(&id, None)
            .await
            .map_err(|e| fail(&e))?;
        run(docker, &id, user, cmd, &[], None).await
    }
    .await;
    discard.defuse();
    if let Err(e) = super::force_remove(docker, &id).await {
        tracing::warn!("{what}: cannot remove container {id}: {e}");
    }
    res
}

/// Removes a throwaway container when the future running it is dropped before it could (an
/// interrupt): Docker's auto-remove only fires once a started container exits, and never for
/// one created but not started yet.
struct Discard {
    /// The value of [`THROWAWAY_LABEL`] on the container; empty once defused.
    tag: String,
    /// The container, once Docker has said which it is.
    id: Option<String>,
}

/// Marks a throwaway container with a tag of its own.
const THROWAWAY_LABEL: &str = "org.pgrehearse.throwaway";

impl Discard {
    /// The container is removed the ordinary way from here on.
    fn defuse(mut self) {
        self.tag.clear();
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        if self.tag.is_empty() {
            return;
        }
        let (tag, id) = (std::mem::take(&mut self.tag), self.id.take());
        super::on_own_runtime(async move {
            let Ok(d) = Docker::connect_with_local_defaults() else {
                return;
            };
            let ids = match id {
                Some(id) => vec![id],
                None => super::labelled(&d, THROWAWAY_LABEL, &tag)
                    .await
                    .map(|(c, _)| c.into_iter().filter_map(|c| c.id).collect())
                    .unwrap_or_default(),
            };
            for id in ids {
                if let Err(e) = super::force_remove(&d, &id).await {
                    tracing::warn!("cannot remove short-lived container {id}: {e}");
                }
            }
        });
    }
}

/// Start `cmd` in the background (detached) in `container` as `user`.
///
/// # Errors
/// Environment error when Docker refuses the exec.
pub async fn spawn(docker: &Docker, container: &str, user: &str, cmd: &[String]) -> Result<()> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                user: Some(user.to_string()),
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::environment(format!("cannot exec in container {container}: {e}")))?;
    docker
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| {
            Error::environment(format!("cannot start exec in container {container}: {e}"))
        })?;
    Ok(())
}

/// `sh -c script` as a command vector.
pub fn sh(script: impl Into<String>) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}
