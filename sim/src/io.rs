//! File formats: NumPy `.npy`/`.npz` (so states, samples and energies can be checked in NumPy),
//! VCD traces and GTKWave save files.

use crate::error::{Error, Result};
use crate::model::Substrate;
use std::io::Write;
use std::path::Path;

/// Element types we write to `.npy`.
pub trait NpyElem: Copy {
    /// NumPy `descr`.
    const DESCR: &'static str;
    /// Little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}
impl NpyElem for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for i64 {
    const DESCR: &'static str = "<i8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl NpyElem for i16 {
    const DESCR: &'static str = "<i2";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Encode a C-order array as `.npy` (format 1.0) bytes.
pub fn npy_bytes<T: NpyElem>(shape: &[usize], data: &[T]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy shape does not match data"
    );
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        T::DESCR,
        shape_txt
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &x in data {
        x.put(&mut out);
    }
    out
}

/// Unicode string array (`<U n`) as `.npy` bytes.
pub fn npy_strings(items: &[String]) -> Vec<u8> {
    let n = items
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut header = format!(
        "{{'descr': '<U{n}', 'fortran_order': False, 'shape': ({},), }}",
        items.len()
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::new();
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for s in items {
        let mut c = 0;
        for ch in s.chars() {
            out.extend_from_slice(&(ch as u32).to_le_bytes());
            c += 1;
        }
        for _ in c..n {
            out.extend_from_slice(&0u32.to_le_bytes());
        }
    }
    out
}

/// Write a `.npy` file.
pub fn write_npy<T: NpyElem>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    std::fs::write(path, npy_bytes(shape, data)).map_err(|e| Error::io(path, e))
}

/// Write a `.npz` (uncompressed zip of `.npy` members).
pub fn write_npz(path: &Path, members: &[(String, Vec<u8>)]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let zerr = |e: zip::result::ZipError| Error::io(path, std::io::Error::other(e.to_string()));
    for (name, bytes) in members {
        z.start_file(format!("{name}.npy"), opts).map_err(zerr)?;
        z.write_all(bytes).map_err(|e| Error::io(path, e))?;
    }
    z.finish().map_err(zerr)?;
    Ok(())
}

/// Largest unit count for which `export` writes `A` dense.
pub const EXPORT_DENSE_LIMIT: usize = 4096;

/// Export the energy as NumPy arrays (see `thermo export --help` for the member list).
pub fn export_npz(s: &Substrate, path: &Path) -> Result<()> {
    let d = s.units();
    let mut m: Vec<(String, Vec<u8>)> = Vec::new();
    if d <= EXPORT_DENSE_LIMIT {
        let a = s.dense_a();
        let data: Vec<f64> = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)])
            .collect();
        m.push(("A".into(), npy_bytes(&[d, d], &data)));
    } else {
        // Local part (stiffness + couplings) as CSR with the diagonal included; buses separately.
        let (mut data, mut indices, mut indptr) = (Vec::new(), Vec::new(), vec![0i64]);
        for i in 0..d {
            let mut row: Vec<(usize, f64)> = vec![(i, s.stiffness[i])];
            row.extend((s.row_ptr[i]..s.row_ptr[i + 1]).map(|p| (s.col[p], s.val[p])));
            row.sort_by_key(|e| e.0);
            for (j, v) in row {
                indices.push(j as i64);
                data.push(v);
            }
            indptr.push(indices.len() as i64);
        }
        m.push(("A_local_data".into(), npy_bytes(&[data.len()], &data)));
        m.push((
            "A_local_indices".into(),
            npy_bytes(&[indices.len()], &indices),
        ));
        m.push(("A_local_indptr".into(), npy_bytes(&[indptr.len()], &indptr)));
    }
    m.push(("b".into(), npy_bytes(&[d], &s.bias)));
    m.push(("T".into(), npy_bytes(&[], &[s.temperature])));
    m.push(("eta".into(), npy_bytes(&[], &[s.eta])));
    let ranges: Vec<i64> = s
        .modules
        .iter()
        .flat_map(|md| [md.offset as i64, (md.offset + md.size) as i64])
        .collect();
    m.push((
        "module_ranges".into(),
        npy_bytes(&[s.modules.len(), 2], &ranges),
    ));
    m.push((
        "module_names".into(),
        npy_strings(&s.modules.iter().map(|x| x.name.clone()).collect::<Vec<_>>()),
    ));
    for (b, bus) in s.buses.iter().enumerate() {
        let k = bus.rank();
        m.push((format!("bus{b}_sigma"), npy_bytes(&[k], &bus.sigma)));
        let u: Vec<f64> = bus.u.iter().flatten().copied().collect();
        let v: Vec<f64> = bus.v.iter().flatten().copied().collect();
        m.push((
            format!("bus{b}_u"),
            npy_bytes(&[k, s.modules[bus.enc].size], &u),
        ));
        m.push((
            format!("bus{b}_v"),
            npy_bytes(&[k, s.modules[bus.dec].size], &v),
        ));
        m.push((
            format!("bus{b}_modules"),
            npy_bytes(&[2], &[bus.enc as i64, bus.dec as i64]),
        ));
    }
    write_npz(path, &m)
}

/// How unit states appear in a VCD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// Golden states as `real` variables.
    Real,
    /// Fixed states as signed vectors of `bits` with `frac` fractional bits.
    Fixed {
        /// Width.
        bits: u32,
        /// Fractional bits (GTKWave's fixed-point shift).
        frac: u32,
    },
}

/// Streams unit states to a VCD: scope `substrate`, one sub-scope per module, one variable `x<n>`
/// per unit (module-local index), plus `substrate.sweep`. One time unit is one clock cycle.
pub struct VcdTrace {
    w: vcd::Writer<std::io::BufWriter<std::fs::File>>,
    ids: Vec<vcd::IdCode>,
    sweep_id: vcd::IdCode,
    kind: TraceKind,
    path: std::path::PathBuf,
    last_t: u64,
}

impl VcdTrace {
    /// Create the file and write the header.
    pub fn create(path: &Path, s: &Substrate, kind: TraceKind) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let f = std::fs::File::create(path).map_err(io)?;
        let mut w = vcd::Writer::new(std::io::BufWriter::new(f));
        w.timescale(1, vcd::TimescaleUnit::NS).map_err(io)?;
        w.add_module("substrate").map_err(io)?;
        let sweep_id = w
            .add_var(vcd::VarType::Integer, 32, "sweep", None)
            .map_err(io)?;
        let mut ids = Vec::with_capacity(s.units());
        for m in &s.modules {
            w.add_module(&m.name).map_err(io)?;
            for n in 0..m.size {
                let id = match kind {
                    TraceKind::Real => w.add_var(vcd::VarType::Real, 64, &format!("x{n}"), None),
                    TraceKind::Fixed { bits, .. } => w.add_wire(bits, &format!("x{n}")),
                }
                .map_err(io)?;
                ids.push(id);
            }
            w.upscope().map_err(io)?;
        }
        w.upscope().map_err(io)?;
        w.enddefinitions().map_err(io)?;
        Ok(VcdTrace {
            w,
            ids,
            sweep_id,
            kind,
            path: path.into(),
            last_t: 0,
        })
    }

    /// Record the states `codes` (fixed, as integers) or `reals` (golden) at time `t`.
    pub fn record(
        &mut self,
        t: u64,
        sweep: u64,
        reals: &[f64],
        codes: Option<&[i16]>,
    ) -> Result<()> {
        let io = |e| Error::io(self.path.clone(), e);
        self.last_t = self.last_t.max(t);
        self.w.timestamp(t).map_err(io)?;
        self.w
            .change_vector(self.sweep_id, bits_of(sweep as i64, 32))
            .map_err(io)?;
        match (self.kind, codes) {
            (TraceKind::Fixed { bits, .. }, Some(c)) => {
                for (id, &v) in self.ids.iter().zip(c) {
                    self.w
                        .change_vector(*id, bits_of(v as i64, bits))
                        .map_err(io)?;
                }
            }
            _ => {
                for (id, &v) in self.ids.iter().zip(reals) {
                    self.w.change_real(*id, v).map_err(io)?;
                }
            }
        }
        Ok(())
    }

    /// Flush the file; returns the last time recorded (what [`gtkw_save`] zooms to).
    pub fn finish(mut self) -> Result<u64> {
        let p = self.path.clone();
        self.w.flush().map_err(|e| Error::io(p, e))?;
        Ok(self.last_t)
    }
}

fn bits_of(v: i64, width: u32) -> impl Iterator<Item = vcd::Value> {
    (0..width).rev().map(move |b| {
        if (v >> b) & 1 == 1 {
            vcd::Value::V1
        } else {
            vcd::Value::V0
        }
    })
}

/// GTKWave trace flags (from GTKWave's `analyzer.h`).
mod gtkw_flags {
    pub const DEC: u64 = 1 << 2;
    pub const RJUSTIFY: u64 = 1 << 5;
    pub const BLANK: u64 = 1 << 9;
    pub const SIGNED: u64 = 1 << 10;
    pub const ANALOG_STEP: u64 = 1 << 15;
    pub const ANALOG_BLANK_STRETCH: u64 = 1 << 17;
    pub const GRP_BEGIN: u64 = 1 << 23;
    pub const GRP_END: u64 = 1 << 24;
    pub const FPDECSHIFT: u64 = 1 << 30;
}

/// Time units the waveform pane of [`gtkw_save`]'s window spans at zoom 0 (measured in
/// GTKWave 3.3 at `[size] 1400 900` with the widths below; each zoom step halves it).
const GTKW_SPAN_AT_ZOOM_0: f64 = 4.2;

/// A GTKWave save file for a trace written by [`VcdTrace`] that ends at time `end` (what
/// [`VcdTrace::finish`] returns): opens zoomed to the whole run, the sweep counter on top, one
/// group per module, each state an analog step trace three rows high (fixed states through
/// GTKWave's fixed-point shift, so values read as real numbers), so the Langevin trajectories
/// are visible.
pub fn gtkw_save(vcd_path: &Path, s: &Substrate, kind: TraceKind, scope: &str, end: u64) -> String {
    use gtkw_flags::*;
    let abs = std::fs::canonicalize(vcd_path).unwrap_or_else(|_| vcd_path.to_path_buf());
    let mut out = String::new();
    out.push_str("[*] thermo: unit states per module\n");
    out.push_str(&format!("[dumpfile] \"{}\"\n", abs.display()));
    // Zoom out until the whole run fits: the pane spans GTKW_SPAN_AT_ZOOM_0 * 2^-zoom units.
    let zoom = -((end.max(1) as f64 / GTKW_SPAN_AT_ZOOM_0)
        .log2()
        .ceil()
        .max(0.0));
    out.push_str("[timestart] 0\n");
    out.push_str(&format!("*{zoom:.6} 0{}\n", " -1".repeat(26)));
    out.push_str("[size] 1400 900\n[sst_width] 240\n[signals_width] 260\n[sst_expanded] 1\n");
    out.push_str(&format!("@{:x}\n{scope}.sweep\n", DEC | RJUSTIFY));
    let stretch = format!("@{:x}\n-\n-\n", ANALOG_BLANK_STRETCH);
    for m in &s.modules {
        out.push_str(&format!("@{:x}\n-{}\n", GRP_BEGIN | BLANK, m.name));
        for n in 0..m.size {
            match kind {
                TraceKind::Fixed { bits, frac } => {
                    out.push_str(&format!(
                        "@{:x}\n[fpshift_count] {frac}\n",
                        DEC | SIGNED | RJUSTIFY | FPDECSHIFT | ANALOG_STEP
                    ));
                    out.push_str(&format!("{scope}.{}.x{n}[{}:0]\n", m.name, bits - 1));
                }
                TraceKind::Real => {
                    out.push_str(&format!(
                        "@{:x}\n{scope}.{}.x{n}\n",
                        RJUSTIFY | ANALOG_STEP,
                        m.name
                    ));
                }
            }
            out.push_str(&stretch);
        }
        out.push_str(&format!("@{:x}\n-{}\n", GRP_END | BLANK, m.name));
    }
    out
}

/// Read a 1-D or 2-D `.npy` of `<f8`, `<f4`, `<i8`, `<i4` or `<i2` as rows of `f64`.
/// Errors name the file and what is wrong with it.
pub fn read_npy_rows(path: &Path) -> Result<Vec<Vec<f64>>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::Parse {
        path: path.into(),
        message: m.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (magic bytes missing)"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[i..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")
        .and_then(|d| d.split('\'').nth(1))
        .ok_or_else(|| bad("no descr in header"))?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_txt = field("shape")
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in header"))?;
    let shape: Vec<usize> = shape_txt
        .trim_start_matches('(')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| bad(&format!("bad shape '{shape_txt}'")))
        })
        .collect::<Result<_>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => {
            return Err(bad(&format!(
                "expected a 1-D or 2-D array, shape is {shape:?}"
            )))
        }
    };
    let width = match descr {
        "<f8" | "<i8" => 8,
        "<f4" | "<i4" => 4,
        "<i2" => 2,
        d => {
            return Err(bad(&format!(
                "unsupported dtype '{d}' (use float64, float32 or an integer type)"
            )))
        }
    };
    let data = &bytes[start + hlen..];
    if data.len() != rows * cols * width {
        return Err(bad(&format!(
            "data holds {} bytes, shape {shape:?} of {descr} needs {}",
            data.len(),
            rows * cols * width
        )));
    }
    let val = |c: &[u8]| -> f64 {
        match descr {
            "<f8" => f64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
            "<i8" => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
            "<f4" => f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64,
            "<i4" => i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64,
            _ => i16::from_le_bytes(c.try_into().unwrap_or([0; 2])) as f64,
        }
    };
    Ok(data
        .chunks(width * cols.max(1))
        .take(rows)
        .map(|r| r.chunks(width).map(val).collect())
        .collect())
}
