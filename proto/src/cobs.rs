//! Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999): removes every 0x00 from a body
//! so that 0x00 can delimit frames, at a cost of one byte per 254.

/// COBS-encode `data` (no delimiter appended).
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    let mut code_pos = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in data {
        if b == 0 {
            out[code_pos] = code;
            code_pos = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_pos] = code;
                code_pos = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_pos] = code;
}

/// COBS-decode one frame's bytes (delimiter removed). `None` if the encoding is invalid.
pub fn decode(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let code = data[i];
        if code == 0 {
            return None;
        }
        i += 1;
        for _ in 1..code {
            let b = *data.get(i)?;
            if b == 0 {
                return None;
            }
            out.push(b);
            i += 1;
        }
        if code != 0xFF && i < data.len() {
            out.push(0);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_removes_zeros() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1, 2, 3],
            vec![0, 1, 0, 2, 0],
            (0..=255u8).collect(),
            vec![7; 254],
            vec![7; 255],
            vec![7; 600],
            (0..1000).map(|i| (i % 7) as u8).collect(),
        ];
        for c in cases {
            let mut e = Vec::new();
            encode(&c, &mut e);
            assert!(!e.contains(&0), "zero in encoding of {c:?}");
            assert_eq!(decode(&e).as_deref(), Some(&c[..]), "case {c:?}");
            assert!(e.len() <= c.len() + c.len() / 254 + 1);
        }
    }
}
