//! Memory contents in `$readmemh` files (what `thermo bitstream` writes beside `board.v`): the
//! substrate's Verilog in that form runs in Verilator exactly as the fixed engine (final states,
//! readout sums, cycle counts), and holds no inline memory assignments.

use thermo_hdl::harness::verify::verify_readout_memory_files;
use thermo_hdl::rtl::mem::with_memory_files;
use thermo_hdl::rtl::top::substrate_verilog;
use thermo_sim::example::{saturating_config, shipped};
use thermo_sim::Substrate;

#[test]
fn hdl_memory_files_verilator_equal_the_engine() {
    for (name, s) in [
        ("shipped", shipped()),
        (
            "saturating 1",
            Substrate::from_config(&saturating_config(1)).expect("valid"),
        ),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "thermo-memfiles-{}-{}",
            name.replace(' ', "-"),
            std::process::id()
        ));
        let (n, files) = verify_readout_memory_files(&s, 5, 30, 9, &dir)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(files > 0, "{name}: no memory files");
        let (v, f) = with_memory_files(|| substrate_verilog(&s));
        let v = v.expect("verilog");
        assert_eq!(f.len(), files);
        assert!(v.contains("$readmemh(\"mem_"), "{name}");
        assert!(!v.contains("   mem[1] = "), "{name}: inline contents left");
        // every file holds every word of its memory (the depth its declaration gives: a power
        // of two, or the exact depth of an instruction or bus-word memory), one hex word a line
        for (fname, text) in &f {
            let at = v.find(&format!("$readmemh(\"{fname}\"")).expect(fname);
            let decl = &v[v[..at].rfind("mem [0:").expect("declaration") + 7..at];
            let last: usize = decl[..decl.find(']').unwrap()].parse().unwrap();
            assert_eq!(text.lines().count(), last + 1, "{fname}");
            assert!(text
                .lines()
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_hexdigit())));
        }
        eprintln!("{name}: {n} readout words and final states equal the engine in Verilator with {files} memory files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
