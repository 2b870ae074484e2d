//! The server a bench run starts for itself: this same binary running `serve` on a
//! data directory, on a free port, its log in `server.log` beside the data.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct ServerProcess {
    /// Taken by [`ServerProcess::stop`]; a server still here when dropped is killed.
    child: Option<Child>,
    pub base: String,
}

impl ServerProcess {
    /// Starts `contactd serve` on `data_dir` and returns once `/readyz` answers 200,
    /// with the time that took.
    /// `scrub_at_once`: erases are scrubbed from the files as soon as possible
    /// (the maintenance scenario measures the scrub).
    pub async fn start(
        data_dir: &Path,
        scrub_at_once: bool,
    ) -> anyhow::Result<(ServerProcess, Duration)> {
        let started = Instant::now();
        let log = std::fs::File::create(log_path(data_dir)).context("cannot create server.log")?;
        let mut command = std::process::Command::new(std::env::current_exe()?);
        if scrub_at_once {
            command.env("CONTACTD_STORE__SCRUB_WITHIN_SECS", "0");
        }
        let mut child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("the server has no stdout")?;
        // It prints its address once listening (opening may first rebuild the index).
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await??;
        let Some(address) = line.trim().strip_prefix("contactd listening on ") else {
            let _ = child.kill();
            bail!(
                "the server did not start (see {})",
                log_path(data_dir).display()
            );
        };
        let server = ServerProcess {
            child: Some(child),
            base: address.to_string(),
        };
        server.wait_ready().await?;
        Ok((server, started.elapsed()))
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.base);
        let http = reqwest::Client::new();
        for _ in 0..6000 {
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("the server was not ready within a minute")
    }

    /// Stops the server as an operator would (SIGTERM: it finishes in-flight work,
    /// indexes what is committed and closes the store), waiting for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std has no SIGTERM (only SIGKILL) and this crate forbids `unsafe`: ask kill(1).
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server.log")
}
