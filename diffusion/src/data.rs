//! The UCI 8x8 optical digits (1,797 images), as shipped by scikit-learn in `digits.csv.gz`
//! and committed under `data/` (see `data/README.md` for provenance, licence and checksum).
//!
//! Format: gzip-compressed CSV, no header, one image per line: 64 integer pixel values in 0..=16
//! (row-major 8x8), then the label 0..=9.

use crate::error::{DiffusionError, Result};
use crate::rng::Rng;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Image side.
pub const SIDE: usize = 8;
/// Largest pixel value in the raw data.
pub const PIXEL_MAX: u8 = 16;
/// Number of images in the committed file.
pub const N_IMAGES: usize = 1797;

/// The digits data set.
#[derive(Clone, Debug)]
pub struct Digits {
    /// Raw pixel values 0..=16, row-major 8x8 per image.
    pub pixels: Vec<[u8; PIXELS]>,
    /// Labels 0..=9.
    pub labels: Vec<u8>,
}

/// The committed data file of this repository (`<workspace>/data/digits.csv.gz`).
pub fn default_data_path() -> PathBuf {
    let local = PathBuf::from("data/digits.csv.gz");
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz")
}

/// Map a raw pixel 0..=16 to the model's data range [-1, 1].
pub fn pixel_to_unit(p: u8) -> f32 {
    p as f32 / 8.0 - 1.0
}

impl Digits {
    /// Load and validate a gzip-compressed digits CSV (see the module docs for the format).
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| DiffusionError::io(path, e))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| DiffusionError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate the decompressed CSV text; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let err = |row: usize, msg: String| DiffusionError::Data {
            path: name.to_string(),
            row,
            msg,
        };
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let row = i + 1;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != PIXELS + 1 {
                return Err(err(
                    row,
                    format!(
                        "expected {} comma-separated values (64 pixels and a label), found {}",
                        PIXELS + 1,
                        fields.len()
                    ),
                ));
            }
            let mut px = [0u8; PIXELS];
            for (c, f) in fields.iter().enumerate() {
                let v: f64 = f
                    .trim()
                    .parse()
                    .map_err(|_| err(row, format!("column {}: `{}` is not a number", c + 1, f)))?;
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(err(
                        row,
                        format!("column {}: `{}` is not an integer", c + 1, f),
                    ));
                }
                if c < PIXELS {
                    if !(0.0..=PIXEL_MAX as f64).contains(&v) {
                        return Err(err(
                            row,
                            format!("pixel {} = {} outside 0..={}", c, v, PIXEL_MAX),
                        ));
                    }
                    px[c] = v as u8;
                } else {
                    if !(0.0..=9.0).contains(&v) {
                        return Err(err(row, format!("label {} outside 0..=9", v)));
                    }
                    labels.push(v as u8);
                }
            }
            pixels.push(px);
        }
        if pixels.is_empty() {
            return Err(err(0, "no images".to_string()));
        }
        Ok(Digits { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Image `i` mapped to [-1, 1] (see [`pixel_to_unit`]).
    pub fn unit_image(&self, i: usize) -> [f32; PIXELS] {
        let mut out = [0f32; PIXELS];
        for (o, &p) in out.iter_mut().zip(self.pixels[i].iter()) {
            *o = pixel_to_unit(p);
        }
        out
    }

    /// All images with the given indices mapped to [-1, 1], flattened row-major `[n, 64]`.
    pub fn unit_matrix(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * PIXELS);
        for &i in idx {
            out.extend_from_slice(&self.unit_image(i));
        }
        out
    }
}

/// A fixed train/test split: indices into [`Digits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Training indices (sorted).
    pub train: Vec<usize>,
    /// Test indices (sorted).
    pub test: Vec<usize>,
}

/// Default fraction of images held out for testing.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// Default split seed.
pub const DEFAULT_SPLIT_SEED: u64 = 20260;

impl Split {
    /// Shuffle 0..n with [`Rng::new`]`(seed)` (Fisher–Yates) and hold out the first
    /// `round(n * test_fraction)` indices as the test set. Deterministic for a given seed.
    /// The project's split of `n` images ([`DEFAULT_TEST_FRACTION`], [`DEFAULT_SPLIT_SEED`]):
    /// the one the committed models were trained on and every figure is measured on.
    pub fn standard(n: usize) -> Result<Self> {
        Self::new(n, DEFAULT_TEST_FRACTION, DEFAULT_SPLIT_SEED)
    }

    pub fn new(n: usize, test_fraction: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(DiffusionError::Invalid(format!(
                "test fraction {test_fraction} must be in [0, 1)"
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        Rng::new(seed).shuffle(&mut idx);
        let n_test = (n as f64 * test_fraction).round() as usize;
        let mut test = idx[..n_test].to_vec();
        let mut train = idx[n_test..].to_vec();
        test.sort_unstable();
        train.sort_unstable();
        Ok(Split { train, test })
    }
}

/// Split `train` (indices) into (fit, validation): shuffle with `Rng::new(seed)` and hold out
/// `round(len * fraction)` as validation. Both sorted.
pub fn carve_validation(train: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx = train.to_vec();
    Rng::new(seed).shuffle(&mut idx);
    let n_val = (idx.len() as f64 * fraction).round() as usize;
    let mut val = idx[..n_val].to_vec();
    let mut fit = idx[n_val..].to_vec();
    val.sort_unstable();
    fit.sort_unstable();
    (fit, val)
}
