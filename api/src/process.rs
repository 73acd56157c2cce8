//! The `process_*` metrics every Prometheus user expects (CPU seconds,
//! resident and virtual memory, open and maximum file descriptors, start
//! time), read from `/proc/self` and written in the OpenMetrics text format.
//! The proxy appends them to its `/metrics`; the controller serves them on
//! its health port. [`parse`] is pure; [`read`] does the reading.

use std::fmt::Write;

/// One sample of the process's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Process {
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on file descriptors.
    pub max_fds: u64,
    /// When the process started, Unix seconds.
    pub start_time_seconds: f64,
}

/// Clock ticks per second in `/proc` (USER_HZ: 100 on every Linux ABI
/// Strait runs on).
const TICKS: f64 = 100.0;

/// Parses `/proc/self/stat`, `/proc/self/status`, `/proc/self/limits` and
/// the `btime` line of `/proc/stat`; `None` when a field is missing.
pub fn parse(
    stat: &str,
    status: &str,
    limits: &str,
    proc_stat: &str,
    open_fds: u64,
) -> Option<Process> {
    // The command name (field 2) may contain spaces and parentheses: the
    // fields that follow start after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field N is f[N - 3].
    let ticks = |n: usize| f.get(n - 3)?.parse::<f64>().ok();
    let cpu_seconds = (ticks(14)? + ticks(15)?) / TICKS;
    let start_ticks = ticks(22)?;
    let virtual_bytes = f.get(23 - 3)?.parse().ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let resident_bytes = kb("VmRSS:")?;
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let btime: f64 = proc_stat
        .lines()
        .find(|l| l.starts_with("btime "))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds,
        resident_bytes,
        virtual_bytes,
        open_fds,
        max_fds,
        start_time_seconds: btime + start_ticks / TICKS,
    })
}

/// Reads this process's state now.
pub fn read() -> Option<Process> {
    let r = |p: &str| std::fs::read_to_string(p).ok();
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(
        &r("/proc/self/stat")?,
        &r("/proc/self/status")?,
        &r("/proc/self/limits")?,
        &r("/proc/stat")?,
        fds,
    )
}

/// The families in OpenMetrics text (no `# EOF`).
pub fn render(p: &Process, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, sample: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {value}"
        );
    };
    family(
        "process_cpu_seconds",
        "counter",
        "Total user and system CPU time spent in seconds.",
        "process_cpu_seconds_total",
        format!("{:.2}", p.cpu_seconds),
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        "process_resident_memory_bytes",
        p.resident_bytes.to_string(),
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        "process_virtual_memory_bytes",
        p.virtual_bytes.to_string(),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        "process_open_fds",
        p.open_fds.to_string(),
    );
    family(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        "process_max_fds",
        p.max_fds.to_string(),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        "process_start_time_seconds",
        format!("{:.2}", p.start_time_seconds),
    );
}

/// Appends the families to an OpenMetrics exposition, before its `# EOF`.
pub fn append(exposition: &mut String) {
    let Some(p) = read() else { return };
    let mut text = String::new();
    render(&p, &mut text);
    match exposition.rfind("# EOF") {
        Some(i) => exposition.insert_str(i, &text),
        None => exposition.push_str(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (strait (proxy)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 12345 123456789 2000 18446744073709551615";
    const STATUS: &str =
        "Name:\tstrait-proxy\nVmPeak:\t  200000 kB\nVmRSS:\t    7800 kB\nThreads:\t3\n";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n";
    const PROC_STAT: &str = "cpu  1 2 3\nbtime 1764600000\nprocesses 9\n";

    #[test]
    fn parses_proc() {
        let p = parse(STAT, STATUS, LIMITS, PROC_STAT, 12).unwrap();
        assert_eq!(p.cpu_seconds, 3.0, "utime 250 + stime 50 ticks");
        assert_eq!(p.resident_bytes, 7800 * 1024);
        assert_eq!(p.virtual_bytes, 123_456_789);
        assert_eq!((p.open_fds, p.max_fds), (12, 1_048_576));
        assert_eq!(p.start_time_seconds, 1_764_600_000.0 + 123.45);
        assert_eq!(parse("garbage", STATUS, LIMITS, PROC_STAT, 1), None);
        assert_eq!(parse(STAT, "", LIMITS, PROC_STAT, 1), None);
    }

    #[test]
    fn renders_before_eof_and_reads_this_process() {
        let mut text = "# TYPE strait_x counter\nstrait_x_total 1\n# EOF\n".to_owned();
        append(&mut text);
        assert!(text.ends_with("# EOF\n"), "{text}");
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
        let p = read().unwrap();
        assert!(p.resident_bytes > 0 && p.open_fds > 0 && p.start_time_seconds > 1.6e9);
    }
}
