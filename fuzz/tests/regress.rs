//! The stable fuzz regression runner: feeds every file of each target's seed corpus (`seeds/<target>/`) and a
//! bounded number of deterministic mutations of them (a seeded PRNG: bit flips, interesting bytes, truncation,
//! splicing, length-field extremes, chunk deletion and duplication) to each target in [`bluebridge_fuzz::TARGETS`].
//! It fails, naming the target and the input and writing it to `artifacts/<target>/`, on a panic, on an input
//! that runs longer than the per-input time bound (a hang), or on an input that makes the target hold more than
//! the allocation bound at once.
//!
//! `cargo test --release --no-default-features --test regress [-- TARGET [FILE…]]`: all targets, or one target,
//! or one target on the given files only (no mutations: how to replay an artifact). Environment:
//! `FUZZ_MUTATIONS` (per target, default [`DEFAULT_MUTATIONS`]), `FUZZ_SEED` (default [`DEFAULT_SEED`]),
//! `FUZZ_TIMEOUT_MS` (per input, default [`DEFAULT_TIMEOUT_MS`]), `FUZZ_MALLOC_LIMIT_MB` (per input, default
//! [`DEFAULT_MALLOC_LIMIT_MB`]).

use bluebridge_fuzz::TARGETS;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Mutations per target.
const DEFAULT_MUTATIONS: usize = 20_000;
/// The PRNG seed (mixed with the target's name).
const DEFAULT_SEED: u64 = 0x6262_6272_6964_6765;
/// Longest an input may run, ms.
const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Most a target may hold allocated at once while running one input, MiB.
const DEFAULT_MALLOC_LIMIT_MB: usize = 64;
/// Largest mutated input, bytes.
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Largest corpus file, bytes (seed corpora stay small).
const MAX_SEED_BYTES: usize = 16 * 1024;
/// Largest corpus of all targets together, bytes.
const MAX_CORPUS_BYTES: usize = 256 * 1024;
/// Failures reported per target before the runner moves on to the next.
const MAX_FAILURES_PER_TARGET: usize = 5;

/// The input being run, for the watchdog and the allocator to name when they stop the process.
struct Current {
    target: &'static str,
    label: String,
    data: Vec<u8>,
}

static CURRENT: AtomicPtr<Current> = AtomicPtr::new(std::ptr::null_mut());
/// When the current input started, ms since [`epoch`] + 1; 0 when no input runs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static BASELINE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIMIT_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);
static ARMED: AtomicBool = AtomicBool::new(false);
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

/// Counts live bytes; while an input runs, stops the process before an allocation that would take the target
/// past [`LIMIT_BYTES`] above what was live when the input started.
struct Counting;

impl Counting {
    fn grow(size: usize) {
        let live = LIVE_BYTES.fetch_add(size, SeqCst) + size;
        if ARMED.load(SeqCst) {
            let held = live.saturating_sub(BASELINE_BYTES.load(SeqCst));
            PEAK_BYTES.fetch_max(held, SeqCst);
            if held > LIMIT_BYTES.load(SeqCst) {
                ARMED.store(false, SeqCst);
                stop(
                    "oom",
                    &format!(
                        "excessive allocation: {held} bytes held (limit {} bytes; this request {size} bytes)",
                        LIMIT_BYTES.load(SeqCst)
                    ),
                );
            }
        }
    }
}

// SAFETY: every call is forwarded to `System` with the same layout; the counters are atomics. `stop` allocates
// through this allocator with `ARMED` cleared, so it never recurses into itself, and it exits the process.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::grow(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::grow(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), SeqCst);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            Self::grow(new_size - layout.size());
        } else {
            LIVE_BYTES.fetch_sub(layout.size() - new_size, SeqCst);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `data` to `artifacts/<target>/<kind>-<hash>` and returns the path.
fn save_artifact(target: &str, kind: &str, data: &[u8]) -> PathBuf {
    let dir = fuzz_dir().join("artifacts").join(target);
    let path = dir.join(format!("{kind}-{:016x}", fnv64(data)));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, data)) {
        eprintln!("(could not write {}: {e})", path.display());
    }
    path
}

fn describe(target: &str, kind: &str, label: &str, data: &[u8], why: &str) -> String {
    let path = save_artifact(target, kind, data);
    let shown = if data.len() <= 128 {
        format!("{:02x?}", data)
    } else {
        format!("{:02x?}… ({} bytes)", &data[..128], data.len())
    };
    format!(
        "FAIL {target}: {why}\n  input: {label}\n  bytes: {shown}\n  saved: {}\n  replay: cd fuzz && cargo test \
         --release --no-default-features --test regress -- {target} {}",
        path.display(),
        path.display()
    )
}

/// Reports the current input as failed (`kind`: hang, oom) and exits: the target cannot be stopped otherwise.
fn stop(kind: &str, why: &str) -> ! {
    let cur = CURRENT.load(SeqCst);
    // SAFETY: the runner replaces CURRENT only between inputs and never frees the input that is running, which
    // is the one a watchdog or allocator stop is about.
    let msg = match unsafe { cur.as_ref() } {
        Some(c) => describe(c.target, kind, &c.label, &c.data, why),
        None => format!("FAIL: {why} (outside any input)"),
    };
    eprintln!("{msg}");
    eprintln!("fuzz regression: FAILED");
    std::process::exit(1)
}

fn watchdog(timeout: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(20));
        let started = STARTED_MS.load(SeqCst);
        if started == 0 {
            continue;
        }
        let now = epoch().elapsed().as_millis() as u64 + 1;
        if now.saturating_sub(started) > timeout.as_millis() as u64 && STARTED_MS.load(SeqCst) == started {
            ARMED.store(false, SeqCst);
            stop(
                "timeout",
                &format!("hang: input still running after {} ms", timeout.as_millis()),
            );
        }
    });
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, b'"', b'\\', b'{', b'[', b'\n', b'=',
];

/// One to four stacked mutations of `base`; `corpus` supplies splice partners.
fn mutate(rng: &mut Rng, base: &[u8], corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let bit = rng.below(len * 8);
                    v[bit / 8] ^= 1 << (bit % 8);
                }
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 => {
                let other = &corpus[rng.below(corpus.len())].1;
                let (a, b) = (rng.below(len + 1), rng.below(other.len() + 1));
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            4 if len > 0 => {
                // A length or count field set to an extreme: headers come first, so half the time near the start.
                let pos = if rng.below(2) == 0 {
                    rng.below(len.min(32))
                } else {
                    rng.below(len)
                };
                let width = [1usize, 2, 4][rng.below(3)];
                let max = if width == 4 {
                    u64::from(u32::MAX)
                } else {
                    (1u64 << (8 * width)) - 1
                };
                let value = [0, 1, max, max - 1, max / 2 + 1, max / 2, len as u64 & max][rng.below(7)];
                let bytes = if rng.below(2) == 0 {
                    value.to_le_bytes()[..width].to_vec()
                } else {
                    value.to_be_bytes()[8 - width..].to_vec()
                };
                for (k, b) in bytes.into_iter().enumerate() {
                    if let Some(slot) = v.get_mut(pos + k) {
                        *slot = b;
                    }
                }
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let k = 1 + rng.below((len - a).min(64));
                v.drain(a..a + k);
            }
            6 if len > 0 => {
                let a = rng.below(len);
                let k = 1 + rng.below((len - a).min(256));
                let chunk = v[a..a + k].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
        }
        v.truncate(MAX_INPUT_BYTES);
    }
    v
}

/// Runs one input; `Err` carries the panic message.
fn run_one(target: &'static str, f: fn(&[u8]), label: String, data: Vec<u8>) -> Result<(), String> {
    let cur = Box::into_raw(Box::new(Current { target, label, data }));
    let old = CURRENT.swap(cur, SeqCst);
    if !old.is_null() {
        // SAFETY: `old` came from Box::into_raw below and is no longer the current input.
        drop(unsafe { Box::from_raw(old) });
    }
    // SAFETY: `cur` stays valid until the next call replaces it.
    let data = unsafe { &(*cur).data };
    BASELINE_BYTES.store(LIVE_BYTES.load(SeqCst), SeqCst);
    STARTED_MS.store(epoch().elapsed().as_millis() as u64 + 1, SeqCst);
    ARMED.store(true, SeqCst);
    let result = catch_unwind(AssertUnwindSafe(|| f(data)));
    ARMED.store(false, SeqCst);
    STARTED_MS.store(0, SeqCst);
    result.map_err(|_| {
        PANIC_MESSAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "panic".into())
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Reads `seeds/<target>/`, sorted by file name.
fn load_corpus(target: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dir = fuzz_dir().join("seeds").join(target);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for e in entries {
        let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_file() {
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = format!(
                "seeds/{target}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            if data.len() > MAX_SEED_BYTES {
                return Err(format!(
                    "{name} is {} bytes; seeds stay under {MAX_SEED_BYTES}",
                    data.len()
                ));
            }
            files.push((name, data));
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("{} holds no seed", dir.display()));
    }
    Ok(files)
}

/// The cargo-fuzz side matches [`TARGETS`]: one `fuzz_targets/<name>.rs` calling `bluebridge_fuzz::<name>` and one
/// `[[bin]]` per target, and a seed directory for each (the binaries need nightly, so stable checks this much).
fn check_layout() -> Vec<String> {
    let mut problems = Vec::new();
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap_or_default();
    let names: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
    for name in &names {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if !text.contains(&format!("bluebridge_fuzz::{name}(data)")) {
            problems.push(format!(
                "FAIL {name}: {} does not call bluebridge_fuzz::{name}(data)",
                file.display()
            ));
        }
        if !manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")) {
            problems.push(format!(
                "FAIL {name}: Cargo.toml has no [[bin]] for fuzz_targets/{name}.rs"
            ));
        }
    }
    for dir in ["fuzz_targets", "seeds"] {
        for e in std::fs::read_dir(fuzz_dir().join(dir)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().trim_end_matches(".rs").to_string();
            if !names.contains(&name.as_str()) {
                problems.push(format!(
                    "FAIL: {dir}/{} belongs to no target in TARGETS",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    problems
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mutations: usize = env_or("FUZZ_MUTATIONS", DEFAULT_MUTATIONS);
    let seed: u64 = env_or("FUZZ_SEED", DEFAULT_SEED);
    let timeout = Duration::from_millis(env_or("FUZZ_TIMEOUT_MS", DEFAULT_TIMEOUT_MS));
    let limit_mb: usize = env_or("FUZZ_MALLOC_LIMIT_MB", DEFAULT_MALLOC_LIMIT_MB);
    LIMIT_BYTES.store(limit_mb << 20, SeqCst);
    std::panic::set_hook(Box::new(|info| {
        *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
    }));
    epoch();
    watchdog(timeout);

    let targets: Vec<_> = match args.first() {
        None => TARGETS.iter().collect(),
        Some(name) => match TARGETS.iter().find(|t| t.0 == name) {
            Some(t) => vec![t],
            None => {
                let names: Vec<_> = TARGETS.iter().map(|t| t.0).collect();
                eprintln!("unknown target {name:?}; targets: {}", names.join(", "));
                std::process::exit(2);
            }
        },
    };
    println!(
        "fuzz regression: {} targets, {mutations} mutations each, FUZZ_SEED={seed}, {} ms and {limit_mb} MiB per \
         input",
        targets.len(),
        timeout.as_millis()
    );
    let started = Instant::now();
    let (mut failures, mut corpus_bytes, mut inputs) = (check_layout(), 0, 0);
    for &&(target, f) in &targets {
        let t0 = Instant::now();
        PEAK_BYTES.store(0, SeqCst);
        let (replay, corpus) = if args.len() > 1 {
            let files: Result<Vec<_>, String> = args[1..]
                .iter()
                .map(|p| {
                    std::fs::read(p)
                        .map(|d| (p.clone(), d))
                        .map_err(|e| format!("{p}: {e}"))
                })
                .collect();
            (true, files)
        } else {
            (false, load_corpus(target))
        };
        let corpus = match corpus {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("FAIL {target}: {e}"));
                continue;
            }
        };
        corpus_bytes += corpus.iter().map(|c| c.1.len()).sum::<usize>();
        let mut target_failures = 0;
        let mut check = |label: String, data: Vec<u8>, failures: &mut Vec<String>| {
            if let Err(why) = run_one(target, f, label.clone(), data.clone()) {
                failures.push(describe(target, "crash", &label, &data, &format!("panic: {why}")));
                target_failures += 1;
            }
            target_failures < MAX_FAILURES_PER_TARGET
        };
        let mut ran = 0;
        let mut go = true;
        for (name, data) in &corpus {
            ran += 1;
            go = check(name.clone(), data.clone(), &mut failures);
            if !go {
                break;
            }
        }
        let n_mutations = if replay || !go { 0 } else { mutations };
        let mut rng = Rng(seed ^ fnv64(target.as_bytes()));
        for i in 0..n_mutations {
            let (name, base) = &corpus[rng.below(corpus.len())];
            let data = mutate(&mut rng, base, &corpus);
            ran += 1;
            if !check(
                format!("mutation {i} of {name} (FUZZ_SEED={seed})"),
                data,
                &mut failures,
            ) {
                break;
            }
        }
        inputs += ran;
        println!(
            "fuzz {target:<16} {:>3} corpus files + {:>5} mutations = {:>5} inputs, {:>6} ms, peak {} KiB held",
            corpus.len(),
            ran - corpus.len().min(ran),
            ran,
            t0.elapsed().as_millis(),
            PEAK_BYTES.load(SeqCst) / 1024
        );
    }
    if corpus_bytes > MAX_CORPUS_BYTES && args.len() <= 1 {
        failures.push(format!(
            "FAIL: the seed corpora hold {corpus_bytes} bytes; keep them under {MAX_CORPUS_BYTES}"
        ));
    }
    println!(
        "fuzz regression: {inputs} inputs, {corpus_bytes} corpus bytes, {} ms",
        started.elapsed().as_millis()
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        eprintln!("fuzz regression: FAILED ({} failures)", failures.len());
        std::process::exit(1);
    }
    println!("fuzz regression: ok");
}
