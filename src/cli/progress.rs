//! Progress bars on standard error (hidden when it is not a terminal, so logs and
//! pipes stay clean).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting rows (or any items) with their rate and the time left.
pub fn items(label: &str, unit: &str, total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    let template = match total {
        Some(_) => format!(
            "{{msg:<12}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} · {{per_sec}} · ETA {{eta}}"
        ),
        None => format!("{{spinner}} {{msg:<12}} {{human_pos}} {unit} · {{per_sec}} · {{elapsed}}"),
    };
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar counting bytes.
pub fn bytes(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<12} [{bar:32}] {bytes}/{total_bytes} · {bytes_per_sec} · ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}
