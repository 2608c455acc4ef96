//! Does this machine run two threads at twice the speed of one? W6's reference check.
//!
//! Three measurements, each one thread doing the work of two against two threads doing
//! one share each (speedup = one thread's time / two threads' time; 2.0 is perfect):
//! - a latency-bound loop (one dependent xorshift chain): scales even on two hardware
//!   threads of one core;
//! - a throughput-bound loop (four independent chains): scales only on two real cores;
//! - raw single-page map/unmap on two *separate* iopt tables (nothing shared at all).
//!
//! `cargo run --release -p iopt-cli --example cpu_scaling`

use std::time::{Duration, Instant};

use iopt::fmt::x86_64::{X86_64, X86_64Config};
use iopt::mem::HeapMemory;
use iopt::{Gather, NoFlush, PageTable, Prot};

fn latency_bound(n: u64) -> u64 {
    let mut x = 0x1234_5678u64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn throughput_bound(n: u64) -> u64 {
    let mut v = [1u64, 2, 3, 4];
    for _ in 0..n {
        for x in &mut v {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
        }
    }
    v.iter().fold(0, |a, b| a ^ b)
}

type Pt = PageTable<X86_64, HeapMemory, NoFlush>;
const PAGES: u64 = 262_144;

fn map_unmap(pt: &Pt) -> u64 {
    let rw = Prot::READ | Prot::WRITE;
    let mut g = Gather::new();
    for i in 0..PAGES {
        // SAFETY: this thread is the only user of `pt`; no hardware walks it.
        let _ = unsafe { pt.map_pages(i << 12, i << 12, 4096, 1, rw) };
    }
    for i in 0..PAGES {
        // SAFETY: as above.
        let _ = unsafe { pt.unmap_pages(i << 12, 4096, 1, &mut g) };
    }
    pt.sync(&mut g);
    PAGES
}

/// Median speedup over `reps` rounds of `f(0)` and `f(1)` run one after the other
/// against the two run on two threads.
fn speedup<T: Send>(reps: usize, f: impl Fn(usize) -> T + Sync) -> f64 {
    let mut s: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box((f(0), f(1)));
            let one: Duration = t.elapsed();
            let t = Instant::now();
            std::thread::scope(|sc| {
                let h = sc.spawn(|| std::hint::black_box(f(1)));
                std::hint::black_box(f(0));
                h.join().expect("worker");
            });
            one.as_secs_f64() / t.elapsed().as_secs_f64()
        })
        .collect();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() {
    let n = 100_000_000;
    println!(
        "latency-bound ALU loop:    speedup {:.2}",
        speedup(5, |_| latency_bound(n))
    );
    println!(
        "throughput-bound ALU loop: speedup {:.2}",
        speedup(5, |_| throughput_bound(n / 2))
    );
    let fmt = || X86_64::new(X86_64Config::default()).expect("default config");
    let tables = [
        PageTable::new(fmt(), HeapMemory::new(), NoFlush).expect("table"),
        PageTable::new(fmt(), HeapMemory::new(), NoFlush).expect("table"),
    ];
    println!(
        "iopt map+unmap, 2 tables:  speedup {:.2}",
        speedup(7, |i| map_unmap(&tables[i]))
    );
}
