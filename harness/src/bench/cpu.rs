//! CPU time of a server's processes, from /proc.

/// Clock ticks per second, the unit of /proc's CPU times.
pub(super) fn ticks_per_s() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .unwrap_or(100) as f64
}

/// CPU ticks of `root` and its descendants, each with those of its reaped children: a backend
/// that exits during a window moves its time into the postmaster's, not out of the sum.
pub(super) fn tree_ticks(root: i32) -> u64 {
    crate::os::process_tree(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| stat_ticks(&stat))
        .sum()
}

/// utime + stime + cutime + cstime of one /proc/PID/stat line; None when it cannot be read.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command is parenthesised and may hold spaces and parentheses: fields start after
    // the last ')'. From there: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    (11..=14).map(|i| rest.get(i)?.parse::<u64>().ok()).sum()
}

/// `ticks` over `secs` seconds as a percentage of one core.
pub(super) fn pct_of_core(ticks: u64, secs: f64, ticks_per_s: f64) -> f64 {
    if secs > 0.0 && ticks_per_s > 0.0 {
        ticks as f64 / ticks_per_s / secs * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_the_command() {
        let stat = "4242 (postgres: app (x) idle) S 4200 4242 4242 0 -1 4194560 \
                    100 0 0 0 7 3 20 10 20 0 1 0 5000 0 0";
        assert_eq!(stat_ticks(stat), Some(7 + 3 + 20 + 10));
        assert_eq!(stat_ticks("4242 (postgres) S 1 2"), None);
        assert_eq!(stat_ticks("no parenthesis"), None);
        assert_eq!(
            stat_ticks("1 (p) S 0 1 1 0 -1 0 0 0 0 0 x 3 20 10 20 0 1 0 5 0 0"),
            None
        );
    }

    #[test]
    fn percent_of_a_core() {
        assert_eq!(pct_of_core(50, 10.0, 100.0), 5.0);
        assert_eq!(pct_of_core(50, 0.0, 100.0), 0.0);
    }
}
