//! The AFL++ harness: `tokenrouter-fuzz-afl TARGET` runs one of `tokenrouter_fuzz::TARGETS`
//! in AFL's persistent mode (bench/fuzz.sh starts it under `cargo afl fuzz`).

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = tokenrouter_fuzz::target(&name) else {
        let names: Vec<_> = tokenrouter_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: tokenrouter-fuzz-afl TARGET (one of: {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}
