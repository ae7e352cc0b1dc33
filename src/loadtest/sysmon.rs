//! Samples the gateway's CPU and resident memory from `/proc` while a run goes on. The process is
//! given by pid, or found as the one listening on the target's loopback port.

use serde::Serialize;
use std::time::{Duration, Instant};

/// Linux reports process times in USER_HZ ticks, 100 per second on every mainstream kernel.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// CPU used over the last interval, in % of one core.
    pub cpu_pct: f64,
    pub rss_kb: u64,
    pub sessions: u64,
}

/// utime + stime of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The process listening on TCP `port` (IPv4 or IPv6), if this user can see it.
pub fn find_listener(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if listening && p == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.to_str() == Some(i))
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Samples `pid` every `every` until dropped; `sessions` reads the run's live session count.
pub struct Monitor {
    pid: u32,
    started: Instant,
    last: Option<(Instant, u64)>,
    pub samples: Vec<Sample>,
}

impl Monitor {
    pub fn new(pid: u32, started: Instant) -> Self {
        Self {
            pid,
            started,
            last: None,
            samples: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Take one sample (the first only sets the CPU baseline).
    pub fn sample(&mut self, sessions: u64) {
        let now = Instant::now();
        let (Some(ticks), Some(rss)) = (cpu_ticks(self.pid), rss_kb(self.pid)) else {
            return;
        };
        if let Some((t0, k0)) = self.last {
            let wall = now.duration_since(t0).as_secs_f64();
            if wall > 0.0 {
                let cpu = (ticks.saturating_sub(k0)) as f64 / TICKS_PER_SEC / wall * 100.0;
                self.samples.push(Sample {
                    t: super::stats::round3(now.duration_since(self.started).as_secs_f64()),
                    cpu_pct: super::stats::round3(cpu),
                    rss_kb: rss,
                    sessions,
                });
            }
        }
        self.last = Some((now, ticks));
    }

    /// CPU time the process used between two instants of the run, from the samples.
    pub fn window(&self, from_s: f64, to_s: f64) -> Option<(f64, u64)> {
        let w: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.t >= from_s && s.t <= to_s)
            .collect();
        if w.is_empty() {
            return None;
        }
        let cpu = w.iter().map(|s| s.cpu_pct).sum::<f64>() / w.len() as f64;
        let rss = w.iter().map(|s| s.rss_kb).max().unwrap_or(0);
        Some((cpu, rss))
    }
}

pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_listening_on_a_port_and_reads_its_usage() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(find_listener(port), Some(std::process::id()));
        assert!(rss_kb(std::process::id()).is_some_and(|r| r > 0));
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
