//! VCD tools: the first divergence between two dumps (`thermo vcd-diff`), signals matched by
//! hierarchical name, optionally through a name map.

use crate::Error;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One dump: per hierarchical signal name, its value changes `(time, value)` in time order.
#[derive(Clone, Debug, Default)]
pub struct Dump {
    /// Changes per signal name (`scope.sub.name`).
    pub signals: BTreeMap<String, Vec<(u64, String)>>,
}

/// Read a VCD file.
pub fn read_vcd(path: &Path) -> Result<Dump, Error> {
    let f = std::fs::File::open(path).map_err(|e| Error::Io(path.into(), e.to_string()))?;
    let mut p = vcd::Parser::new(std::io::BufReader::new(f));
    let header = p
        .parse_header()
        .map_err(|e| Error::Io(path.into(), format!("VCD header: {e}")))?;
    let mut names: HashMap<vcd::IdCode, Vec<String>> = HashMap::new();
    fn walk(items: &[vcd::ScopeItem], prefix: &str, names: &mut HashMap<vcd::IdCode, Vec<String>>) {
        for it in items {
            match it {
                vcd::ScopeItem::Scope(s) => {
                    let p = if prefix.is_empty() {
                        s.identifier.clone()
                    } else {
                        format!("{prefix}.{}", s.identifier)
                    };
                    walk(&s.items, &p, names);
                }
                vcd::ScopeItem::Var(v) => {
                    let n = if prefix.is_empty() {
                        v.reference.clone()
                    } else {
                        format!("{prefix}.{}", v.reference)
                    };
                    names.entry(v.code).or_default().push(n);
                }
                _ => {}
            }
        }
    }
    walk(&header.items, "", &mut names);
    let mut dump = Dump::default();
    for ns in names.values() {
        for n in ns {
            dump.signals.insert(n.clone(), Vec::new());
        }
    }
    let mut t = 0u64;
    for cmd in p {
        let cmd = cmd.map_err(|e| Error::Io(path.into(), format!("VCD: {e}")))?;
        let (id, val) = match cmd {
            vcd::Command::Timestamp(x) => {
                t = x;
                continue;
            }
            vcd::Command::ChangeScalar(i, v) => (i, v.to_string()),
            vcd::Command::ChangeVector(i, v) => (i, normalize(&v.to_string())),
            vcd::Command::ChangeReal(i, v) => (i, format!("{v}")),
            vcd::Command::ChangeString(i, v) => (i, v),
            _ => continue,
        };
        if let Some(ns) = names.get(&id) {
            for n in ns {
                let ch = dump.signals.get_mut(n).expect("declared");
                if ch.last().map(|c| &c.1) != Some(&val) {
                    ch.push((t, val.clone()));
                }
            }
        }
    }
    Ok(dump)
}

/// Drop leading zeros of a binary vector (VCD writers differ in padding).
fn normalize(v: &str) -> String {
    let t = v.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

/// The first divergence between two dumps.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Time of the first difference.
    pub time: u64,
    /// Signal name in dump A.
    pub signal: String,
    /// Value in A (`None`: no value yet).
    pub a: Option<String>,
    /// Value in B.
    pub b: Option<String>,
}

/// Result of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffReport {
    /// Signals compared (present in both, after the map).
    pub compared: usize,
    /// Signals only in A / only in B.
    pub only_a: usize,
    /// Signals only in B.
    pub only_b: usize,
    /// First divergence, if any.
    pub first: Option<Divergence>,
}

/// Read a name map: lines `name_in_a name_in_b` (`#` comments).
pub fn read_map(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io(path.into(), e.to_string()))?;
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), None) => v.push((a.to_string(), b.to_string())),
            _ => {
                return Err(Error::Io(
                    path.into(),
                    format!("line {}: expected `name_in_a name_in_b`", n + 1),
                ))
            }
        }
    }
    Ok(v)
}

fn value_at(ch: &[(u64, String)], t: u64) -> Option<&String> {
    let k = ch.partition_point(|c| c.0 <= t);
    if k == 0 {
        None
    } else {
        Some(&ch[k - 1].1)
    }
}

/// Compare dumps `a` and `b`: signals with equal names (or paired by `map`), the earliest
/// time at which any pair differs.
pub fn diff(a: &Dump, b: &Dump, map: &[(String, String)]) -> DiffReport {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mapped_a: HashMap<&str, &str> = map.iter().map(|(x, y)| (x.as_str(), y.as_str())).collect();
    for name in a.signals.keys() {
        let bn = mapped_a
            .get(name.as_str())
            .copied()
            .unwrap_or(name.as_str());
        if b.signals.contains_key(bn) {
            pairs.push((name.clone(), bn.to_string()));
        }
    }
    let compared = pairs.len();
    let only_a = a.signals.len() - compared;
    let only_b = b.signals.len() - compared;
    let mut first: Option<Divergence> = None;
    for (na, nb) in &pairs {
        let ca = &a.signals[na];
        let cb = &b.signals[nb];
        let mut times: Vec<u64> = ca.iter().chain(cb.iter()).map(|c| c.0).collect();
        times.sort_unstable();
        times.dedup();
        for t in times {
            if let Some(f) = &first {
                if t >= f.time {
                    break;
                }
            }
            let (va, vb) = (value_at(ca, t), value_at(cb, t));
            if va != vb {
                first = Some(Divergence {
                    time: t,
                    signal: if na == nb {
                        na.clone()
                    } else {
                        format!("{na} / {nb}")
                    },
                    a: va.cloned(),
                    b: vb.cloned(),
                });
                break;
            }
        }
    }
    DiffReport {
        compared,
        only_a,
        only_b,
        first,
    }
}
