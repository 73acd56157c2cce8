//! `strait stat`: live golden metrics summed over one or more proxies.
//!
//! Every interval each proxy's `/metrics` is scraped ([`scrape`]), each
//! proxy's change since its previous scrape is taken with counter resets
//! handled, and the changes of all proxies are summed into one table per
//! direction, service, route and backend ([`table`], the pure part):
//! requests per second, success rate (non-5xx), p50/p95/p99, retries per
//! second and ejected endpoints.

pub mod mesh;
pub mod scrape;
pub mod table;

use scrape::{Scrape, Scraper, Target};
use std::time::{Duration, Instant};
use table::Direction;

/// What to show and how often.
pub struct Options {
    /// The proxies.
    pub target: Target,
    /// Time between scrapes.
    pub interval: Duration,
    /// Print one table after one interval and return.
    pub once: bool,
    /// Which side of the proxies.
    pub direction: Direction,
}

fn proxy_name(key: &str) -> &str {
    // Pod keys carry the uid after a space, so a recreated pod is new.
    key.split(' ').next().unwrap_or(key)
}

fn first_error(s: &Scrape) -> String {
    s.failed
        .iter()
        .map(|(k, e)| format!("{}: {e}", proxy_name(k)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Scrapes every interval and prints the table.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let scraper = Scraper::new(opts.target).await?;
    let mut prev = scraper.scrape().await?;
    if prev.proxies.is_empty() {
        if prev.failed.is_empty() {
            anyhow::bail!(
                "no proxies found: no running meshed pod among the {}",
                scraper.describe()
            );
        }
        anyhow::bail!("no proxy answered: {}", first_error(&prev));
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(opts.interval).await;
        let cur = scraper.scrape().await?;
        let secs = since.elapsed().as_secs_f64();
        since = Instant::now();
        // A proxy seen for the first time is only a baseline this round.
        let deltas: Vec<_> = cur
            .proxies
            .iter()
            .filter_map(|(k, c)| prev.proxies.get(k).map(|p| table::deltas(p, c)))
            .flatten()
            .collect();
        let mut out = table::render(&table::rows(&deltas, secs, opts.direction));
        out.push_str(&mesh::render(&mesh::shares(&deltas, opts.direction)));
        for (k, e) in &cur.failed {
            out.push_str(&format!("! {}: {e}\n", proxy_name(k)));
        }
        let n = cur.proxies.len();
        let title = format!(
            "{n} {} ({}), every {:?}\n\n",
            if n == 1 { "proxy" } else { "proxies" },
            scraper.describe(),
            opts.interval
        );
        if tty && !opts.once {
            // Clear the screen and redraw, like `top`.
            print!("\x1b[2J\x1b[H{title}{out}");
        } else {
            print!("{title}{out}");
        }
        if opts.once {
            return Ok(());
        }
        prev = cur;
    }
}
