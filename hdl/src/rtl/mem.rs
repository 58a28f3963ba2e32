//! A synchronous simple-dual-port memory with run-time geometry, initial contents and a
//! block-RAM attribute (the memories of the substrate: instructions, biases, bus factors,
//! double-buffered states).

use rust_hdl::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    /// The memory files of the Verilog being generated on this thread ([`with_memory_files`]).
    static MEM_FILES: RefCell<Option<BTreeMap<String, String>>> = const { RefCell::new(None) };
    /// Are the state banks distributed RAM ([`with_distributed_state`])?
    static DISTRIBUTED_STATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (which generates Verilog) with the memories made by [`Mem::state`] (the state
/// banks, and the bus sides' gain tables) marked `ram_style = "distributed"` instead of
/// `"block"` if `on`: on the ECP5, yosys builds them from the slices' 16x4 LUT RAMs
/// (`TRELLIS_DPR16X4`) and a read register instead of an 18-kbit DP16KD each. The banks' reads
/// are the crossbar's inputs, read by every lane and bus side; out of the block-RAM rows they
/// route more easily. Their bits are the state twice over (two buffers), twice (two read
/// ports), each bank padded to a power of two: 64 kbit for 1,024 units on 8 lanes, 96 kbit on
/// 12 (86 units a lane in banks of 256 words) (`bitstreams/README.md`, Scale).
/// The iCE40 has no distributed RAM: its flow passes `false`. The behaviour (registered read,
/// [`RW_POISON`] on a collision in simulation) is the same in every style.
pub fn with_distributed_state<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let old = DISTRIBUTED_STATE.with(|b| b.replace(on));
    let r = f();
    DISTRIBUTED_STATE.with(|b| b.set(old));
    r
}

/// Run `f` (which generates Verilog) with every [`Mem`] holding non-zero contents reading them
/// from a file with `$readmemh` instead of an `initial` block of assignments (yosys' front end
/// reads a file of a few thousand words at once; it spends minutes on as many assignments).
/// Returns `f`'s result and the files, name (relative: the tool must run in the directory they
/// are written to) to text; the name is the FNV-1a hash of the text, so equal contents share one
/// file and the Verilog names its contents.
pub fn with_memory_files<R>(f: impl FnOnce() -> R) -> (R, BTreeMap<String, String>) {
    MEM_FILES.with(|m| *m.borrow_mut() = Some(BTreeMap::new()));
    let r = f();
    let files = MEM_FILES
        .with(|m| m.borrow_mut().take())
        .unwrap_or_default();
    (r, files)
}

/// The `$readmemh` file of `words` (`dbits` wide, one word a line, every word of the memory)
/// and its name.
fn memory_file(words: &[u32], dbits: usize) -> (String, String) {
    let digits = dbits.div_ceil(4);
    let text: String = words.iter().map(|w| format!("{w:0digits$x}\n")).collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    (format!("mem_{h:016x}.hex"), text)
}

/// Memories up to this many bits are built from flip-flops.
pub const LOGIC_BITS: usize = 64;

/// What a read of the address being written in the same cycle returns in simulation (rust-hdl,
/// and Verilator builds, which define `THERMO_RW_POISON`): this word, masked to the width.
/// The synthesised memory is marked `no_rw_check` (the block RAM's collision behaviour is left
/// undefined, which saves yosys' read-before-write bypass: 39 LUT4 and 71 flip-flops per 32-bit
/// memory on both families), so the design must never *use* such a read; the poison makes every
/// bit-exact test fail if it does.
pub const RW_POISON: u32 = 0xDEAD_BEEF;

/// Simple dual-port RAM of `depth <= 2^abits` words of `dbits` bits (`dbits <= 32`).
///
/// **Computes** `read_data <= mem[read_address]` and, when `write_enable`,
/// `mem[write_address] <= write_data` on each rising edge of `clock`. A read of the address being
/// written in the same cycle is undefined on the hardware and returns [`RW_POISON`] in
/// simulation: users never consume such a read (the substrate and link tests prove it). Ports are 16-bit addresses and 32-bit
/// data; only the low `abits` / `dbits` bits are used (`read_data` is zero-extended).
/// A memory of exact depth ([`Mem::exact`], `depth < 2^abits`: the instruction and bus-word
/// memories and the coupling ROM, whose depth is the program's) takes no more block RAM than
/// its words need (yosys maps 5,640 words of 32 bits to 12 DP16KD, not the 16 of 8,192); a
/// read at or beyond `depth` is undefined on the hardware and returns [`RW_POISON`] in
/// simulation too, a write there does nothing.
///
/// **Latency** one cycle (registered read). The Verilog carries `(* ram_style = "block" *)` and
/// an `initial` block with the contents (inside [`with_memory_files`]: `$readmemh` of a file, as
/// `thermo bitstream` writes it), so yosys maps it to DP16KD (ECP5) / SB_RAM40_4K (iCE40):
/// `hdl/tests/synth.rs` checks that. A memory of at most [`LOGIC_BITS`] bits (a bus side's `k`
/// gains) is marked `ram_style = "logic"` instead: flip-flops, not a whole block RAM. Proven equal to the engine as part of every substrate test.
#[derive(LogicBlock)]
pub struct Mem {
    /// Clock of both ports.
    pub clock: Signal<In, Clock>,
    /// Read address.
    pub read_address: Signal<In, Bits<16>>,
    /// Registered read data.
    pub read_data: Signal<Out, Bits<32>>,
    /// Write address.
    pub write_address: Signal<In, Bits<16>>,
    /// Write data.
    pub write_data: Signal<In, Bits<32>>,
    /// Write enable.
    pub write_enable: Signal<In, Bit>,
    _abits: usize,
    _dbits: usize,
    _depth: usize,
    _contents: Vec<u32>,
    _state: bool,
    _logic: bool,
}

impl Mem {
    /// A memory of `2^abits` words of `dbits` bits holding `init` (rest zero).
    pub fn new(_abits: usize, _dbits: usize, init: &[u32]) -> Self {
        Self::sized(_abits, 1 << _abits, _dbits, init)
    }
    /// A memory of exactly `max(init.len(), 2)` words of `dbits` bits holding `init`, addressed
    /// by `clog2` of that many bits.
    pub fn exact(dbits: usize, init: &[u32]) -> Self {
        let depth = init.len().max(2);
        let abits = (usize::BITS - (depth - 1).leading_zeros()) as usize;
        Self::sized(abits, depth, dbits, init)
    }
    fn sized(_abits: usize, _depth: usize, _dbits: usize, init: &[u32]) -> Self {
        assert!((1..=16).contains(&_abits) && (1..=32).contains(&_dbits));
        assert!(_depth <= 1 << _abits && _depth > 1 << (_abits - 1));
        assert!(init.len() <= _depth, "memory contents exceed depth");
        let mask = if _dbits == 32 {
            u32::MAX
        } else {
            (1u32 << _dbits) - 1
        };
        let mut _contents: Vec<u32> = init.iter().map(|&w| w & mask).collect();
        _contents.resize(_depth, 0);
        Mem {
            clock: Default::default(),
            read_address: Default::default(),
            read_data: Default::default(),
            write_address: Default::default(),
            write_data: Default::default(),
            write_enable: Default::default(),
            _abits,
            _dbits,
            _depth,
            _contents,
            _state: false,
            _logic: false,
        }
    }
    /// This memory is built from flip-flops whatever its size (`ram_style = "logic"`): a lane's
    /// one-bit park gates, which would take a whole block RAM each.
    pub fn logic(mut self) -> Self {
        self._logic = true;
        self
    }
    /// This memory may be distributed RAM ([`with_distributed_state`]): a state bank, a
    /// lane's park memory or a bus side's gain table.
    pub fn state(mut self) -> Self {
        self._state = true;
        self
    }
    fn mask(&self) -> u32 {
        if self._dbits == 32 {
            u32::MAX
        } else {
            (1u32 << self._dbits) - 1
        }
    }
    /// The word at `addr` (simulation only; for inspection).
    pub fn peek(&self, addr: usize) -> u32 {
        self._contents[addr]
    }
}

impl Logic for Mem {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let amask = (1usize << self._abits) - 1;
            let ra = self.read_address.val().to_u64() as usize & amask;
            let poison = ((RW_POISON & self.mask()) as u64).to_bits();
            self.read_data.next = match self._contents.get(ra) {
                Some(&w) => (w as u64).to_bits(),
                None => poison,
            };
            if self.write_enable.val() {
                let wa = self.write_address.val().to_u64() as usize & amask;
                let wd = self.write_data.val().to_u64() as u32 & self.mask();
                if let Some(w) = self._contents.get_mut(wa) {
                    *w = wd;
                }
                if wa == ra {
                    self.read_data.next = poison;
                }
            }
        }
    }
    fn connect(&mut self) {
        self.read_data.connect();
    }
    fn hdl(&self) -> Verilog {
        let a = self._abits;
        let d = self._dbits;
        let n = self._depth;
        let mut init = String::new();
        for (i, w) in self._contents.iter().enumerate() {
            if *w != 0 {
                init.push_str(&format!("   mem[{i}] = {d}'h{w:x};\n"));
            }
        }
        let nonzero = self._contents.iter().any(|&w| w != 0);
        let file = MEM_FILES.with(|m| {
            let mut m = m.borrow_mut();
            let files = m.as_mut().filter(|_| nonzero)?;
            let (name, text) = memory_file(&self._contents, d);
            files.insert(name.clone(), text);
            Some(name)
        });
        let init_block = match file {
            Some(name) => format!("initial $readmemh(\"{name}\", mem);"),
            None => format!(
                "integer i;
initial begin
   for (i = 0; i < {n}; i = i + 1) mem[i] = {d}'h0;
{init}end"
            ),
        };
        let pad = if d < 32 {
            format!("{{{}'b0, ", 32 - d)
        } else {
            "{".to_string()
        };
        // beyond an exact depth: undefined on the hardware, the poison in Verilator
        let beyond = if n < 1 << a {
            format!(
                "\n   if (read_address[{am}:0] >= {a}'d{n}) rd <= {d}'h{poison:x};",
                am = a - 1,
                poison = RW_POISON & self.mask()
            )
        } else {
            String::new()
        };
        let style = if n * d <= LOGIC_BITS || self._logic {
            "logic"
        } else if self._state && DISTRIBUTED_STATE.with(|b| b.get()) {
            "distributed"
        } else {
            "block"
        };
        Verilog::Custom(format!(
            "(* ram_style = \"{style}\", no_rw_check *) reg [{dm}:0] mem [0:{depth}];
{init_block}
reg [{dm}:0] rd;
always @(posedge clock) begin
   rd <= mem[read_address[{am}:0]];
   if (write_enable) mem[write_address[{am}:0]] <= write_data[{dm}:0];
`ifdef THERMO_RW_POISON{beyond}
   if (write_enable && write_address[{am}:0] == read_address[{am}:0]) rd <= {d}'h{poison:x};
`endif
end
always @(*) read_data = {pad}rd}};",
            dm = d - 1,
            am = a - 1,
            depth = n - 1,
            poison = RW_POISON & self.mask(),
        ))
    }
    fn timing(&self) -> Vec<TimingInfo> {
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::simx::{settle, tick};

    /// A read of the address written in the same cycle returns the poison word (the design may
    /// not use it); reads of other addresses and later reads see the written word.
    #[test]
    fn collision_reads_poison_and_the_verilog_marks_it() {
        let mut m = Mem::new(4, 16, &[7, 8, 9]);
        m.connect_all();
        settle(&mut m).unwrap();
        let cycle = |m: &mut Mem, ra: u64, wa: u64, wd: u64, we: bool| -> u64 {
            m.read_address.next = ra.to_bits();
            m.write_address.next = wa.to_bits();
            m.write_data.next = wd.to_bits();
            m.write_enable.next = we;
            tick(m, |m| &mut m.clock).unwrap();
            m.read_data.val().to_u64()
        };
        assert_eq!(cycle(&mut m, 1, 1, 0x1234, false), 8);
        assert_eq!(
            cycle(&mut m, 1, 1, 0x1234, true),
            (RW_POISON & 0xFFFF) as u64
        );
        assert_eq!(cycle(&mut m, 1, 2, 0x5678, true), 0x1234);
        assert_eq!(cycle(&mut m, 2, 0, 0, false), 0x5678);
        let v = crate::rtl::block_verilog(&m).unwrap();
        assert!(v.contains("no_rw_check"), "{v}");
        assert!(v.contains("`ifdef THERMO_RW_POISON"), "{v}");
    }

    /// A memory of exact depth: 5 words addressed by 3 bits; reads beyond the depth return the
    /// poison, writes there do nothing, and the Verilog declares 5 words and poisons the read.
    #[test]
    fn exact_depth_poisons_reads_beyond_it() {
        let mut m = Mem::exact(16, &[1, 2, 3, 4, 5]);
        m.connect_all();
        settle(&mut m).unwrap();
        let cycle = |m: &mut Mem, ra: u64, wa: u64, we: bool| -> u64 {
            m.read_address.next = ra.to_bits();
            m.write_address.next = wa.to_bits();
            m.write_data.next = 0x77u64.to_bits();
            m.write_enable.next = we;
            tick(m, |m| &mut m.clock).unwrap();
            m.read_data.val().to_u64()
        };
        assert_eq!(cycle(&mut m, 4, 6, true), 5);
        assert_eq!(cycle(&mut m, 5, 0, false), (RW_POISON & 0xFFFF) as u64);
        assert_eq!(cycle(&mut m, 6, 0, false), (RW_POISON & 0xFFFF) as u64);
        // address bits above the memory's 3 are ignored: 8 + 2 reads word 2
        assert_eq!(cycle(&mut m, 10, 0, false), 3);
        let v = crate::rtl::block_verilog(&m).unwrap();
        assert!(v.contains("mem [0:4]"), "{v}");
        assert!(
            v.contains("if (read_address[2:0] >= 3'd5) rd <= 16'hbeef;"),
            "{v}"
        );
        assert_eq!(Mem::exact(32, &[0; 5640])._abits, 13);
        assert_eq!(Mem::exact(32, &[])._depth, 2);
    }
}
