//! A seeded MLP digit classifier on the 8x8 digits, the judge of sample quality.
//!
//! Architecture: dense layers with ReLU between them, e.g. `64-128-64-10`; the output layer
//! gives logits, [`Classifier::probs`] their softmax. The post-ReLU activations of the last
//! hidden layer are the features of the Frechet distance ([`Classifier::features`],
//! [`crate::quality`]). Inputs are images in the data's scale (`pixel / 8 - 1`, see
//! [`crate::data::pixel_to_unit`]), flattened `[n, 64]`.
//!
//! Training: cross-entropy, Adam with decoupled weight decay and a cosine learning-rate decay,
//! optional augmentation (random shifts by one pixel, filled with the background value -1, and
//! Gaussian pixel noise). Everything is seeded with [`crate::rng::Rng`] and single-threaded, so
//! the same seed gives the same weights bit for bit on the same platform.
//!
//! File format: safetensors, tensors `fc{l}.weight` `[out, in]` and `fc{l}.bias` `[out]` (F32,
//! PyTorch `nn.Linear` layout), header metadata `thermo` = `{"format":
//! "thermo-digits-classifier/1", "widths": [...], "info": {...}}`. Loading checks every tensor
//! (present, shape, finite) and errors name the file and the tensor.

use crate::data::{PIXELS, SIDE};
use crate::error::{DiffusionError, Result};
use crate::rng::Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Value of the `format` metadata key of a classifier file.
pub const FORMAT: &str = "thermo-digits-classifier/1";
/// Number of classes.
pub const CLASSES: usize = 10;
/// Default layer widths (input, hidden..., classes).
pub const DEFAULT_WIDTHS: [usize; 4] = [PIXELS, 256, 64, CLASSES];
/// Default fraction of the training split held out for validation (hyper-parameter choice).
pub const DEFAULT_VAL_FRACTION: f64 = 0.15;
/// Default seed of the validation carve-out.
pub const DEFAULT_VAL_SEED: u64 = 0xC1A5;

/// Training hyper-parameters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassifierTrainConfig {
    /// Layer widths: input (64), hidden..., classes (10).
    pub widths: Vec<usize>,
    /// Seed of initialisation, batching and augmentation.
    pub seed: u64,
    /// Passes over the training images.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Peak Adam learning rate (cosine-decayed to `lr_final_frac * lr`).
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    pub lr_final_frac: f32,
    /// Decoupled (AdamW) weight decay on the weights (not the biases).
    pub weight_decay: f32,
    /// Probability that a training image is shifted by one pixel (random direction, possibly
    /// diagonal) before use.
    pub shift_prob: f32,
    /// Standard deviation of Gaussian pixel noise added to training images (data scale).
    pub noise_std: f32,
    /// Largest shift in pixels; `0` means whole-pixel shifts by one (8 neighbours), `> 0` a
    /// sub-pixel shift uniform in `[-shift_max, shift_max]^2` (bilinear interpolation).
    #[serde(default)]
    pub shift_max: f32,
    /// Dropout probability on the hidden activations during training (inverted dropout).
    #[serde(default)]
    pub dropout: f32,
}

impl Default for ClassifierTrainConfig {
    fn default() -> Self {
        ClassifierTrainConfig {
            widths: DEFAULT_WIDTHS.to_vec(),
            seed: 1,
            epochs: 150,
            batch: 32,
            lr: 2e-3,
            lr_final_frac: 0.02,
            weight_decay: 1e-4,
            shift_prob: 0.5,
            noise_std: 0.2,
            shift_max: 0.0,
            dropout: 0.0,
        }
    }
}

/// One dense layer `y = W x + b`, `W` row-major `[out, in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Output width.
    pub n_out: usize,
    /// Input width.
    pub n_in: usize,
    /// Weights `[n_out, n_in]`.
    pub w: Vec<f32>,
    /// Bias `[n_out]`.
    pub b: Vec<f32>,
}

impl Layer {
    fn zeros(n_out: usize, n_in: usize) -> Self {
        Layer {
            n_out,
            n_in,
            w: vec![0.0; n_out * n_in],
            b: vec![0.0; n_out],
        }
    }

    fn apply(&self, x: &[f32], y: &mut Vec<f32>) {
        y.clear();
        for (row, &b) in self.w.chunks_exact(self.n_in).zip(&self.b) {
            let mut acc = b;
            for (w, v) in row.iter().zip(x) {
                acc += w * v;
            }
            y.push(acc);
        }
    }
}

/// A trained (or loaded) classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Classifier {
    /// Layers, input first; ReLU after every layer but the last.
    pub layers: Vec<Layer>,
}

/// Training curve and accuracies of [`Classifier::train`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainLog {
    /// Mean cross-entropy (nats) of the augmented training batches per epoch.
    pub epoch_loss: Vec<f64>,
}

fn validate_widths(widths: &[usize]) -> Result<()> {
    if widths.len() < 2 || widths[0] != PIXELS || *widths.last().unwrap() != CLASSES {
        return Err(DiffusionError::Invalid(format!(
            "classifier widths {widths:?}: need at least input and output, input {PIXELS}, output {CLASSES}"
        )));
    }
    if widths.contains(&0) {
        return Err(DiffusionError::Invalid(format!(
            "classifier widths {widths:?}: zero width"
        )));
    }
    Ok(())
}

/// Shift an image by `(dx, dy)` pixels, filling with the background value -1.
fn shift(img: &[f32], dx: i32, dy: i32, out: &mut [f32]) {
    let s = SIDE as i32;
    for y in 0..s {
        for x in 0..s {
            let (sx, sy) = (x - dx, y - dy);
            out[(y * s + x) as usize] = if (0..s).contains(&sx) && (0..s).contains(&sy) {
                img[(sy * s + sx) as usize]
            } else {
                -1.0
            };
        }
    }
}

/// Shift an image by a real `(dx, dy)` with bilinear interpolation, background -1 outside.
fn shift_bilinear(img: &[f32], dx: f32, dy: f32, out: &mut [f32]) {
    let s = SIDE as i32;
    let px = |x: i32, y: i32| -> f32 {
        if (0..s).contains(&x) && (0..s).contains(&y) {
            img[(y * s + x) as usize]
        } else {
            -1.0
        }
    };
    for y in 0..s {
        for x in 0..s {
            let (sx, sy) = (x as f32 - dx, y as f32 - dy);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i32, y0 as i32);
            out[(y * s + x) as usize] = (1.0 - fy)
                * ((1.0 - fx) * px(x0, y0) + fx * px(x0 + 1, y0))
                + fy * ((1.0 - fx) * px(x0, y0 + 1) + fx * px(x0 + 1, y0 + 1));
        }
    }
}

fn check_images(images: &[f32]) -> usize {
    assert!(
        images.len() % PIXELS == 0,
        "images must be flattened [n, {PIXELS}], got {} values",
        images.len()
    );
    images.len() / PIXELS
}

impl Classifier {
    /// A classifier with the given widths, He-normal weights from `Rng::stream(seed, 0xc1)`,
    /// zero biases.
    pub fn new(widths: &[usize], seed: u64) -> Result<Self> {
        validate_widths(widths)?;
        let mut rng = Rng::stream(seed, 0xc1);
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let mut layer = Layer::zeros(widths[l + 1], widths[l]);
                let gain = if l + 1 < n { 2.0 } else { 1.0 };
                let sd = (gain / widths[l] as f64).sqrt();
                for w in layer.w.iter_mut() {
                    *w = (sd * rng.normal()) as f32;
                }
                layer
            })
            .collect();
        Ok(Classifier { layers })
    }

    /// Layer widths (input, hidden..., classes).
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].n_in];
        w.extend(self.layers.iter().map(|l| l.n_out));
        w
    }

    /// Width of [`Classifier::features`] (the last hidden layer).
    pub fn feature_dim(&self) -> usize {
        let n = self.layers.len();
        if n >= 2 {
            self.layers[n - 2].n_out
        } else {
            self.layers[0].n_in
        }
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Forward pass of one image; `acts[l]` = input of layer `l` (post-ReLU for `l > 0`),
    /// returns the logits.
    fn forward_one(&self, x: &[f32], acts: &mut Vec<Vec<f32>>) -> Vec<f32> {
        acts.clear();
        acts.push(x.to_vec());
        let n = self.layers.len();
        let mut y = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            layer.apply(acts.last().unwrap(), &mut y);
            if l + 1 < n {
                for v in y.iter_mut() {
                    *v = v.max(0.0);
                }
                acts.push(y.clone());
            }
        }
        y
    }

    /// Training forward pass: like `forward_one`, with inverted dropout (probability `p`) on
    /// the hidden activations; `acts` holds the dropped-out, rescaled activations.
    fn forward_train(
        &self,
        x: &[f32],
        acts: &mut Vec<Vec<f32>>,
        p: f32,
        rng: &mut Rng,
    ) -> Vec<f32> {
        if p <= 0.0 {
            return self.forward_one(x, acts);
        }
        acts.clear();
        acts.push(x.to_vec());
        let n = self.layers.len();
        let keep_inv = 1.0 / (1.0 - p);
        let mut y = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            layer.apply(acts.last().unwrap(), &mut y);
            if l + 1 < n {
                for v in y.iter_mut() {
                    *v = if (rng.uniform() as f32) < p {
                        0.0
                    } else {
                        v.max(0.0) * keep_inv
                    };
                }
                acts.push(y.clone());
            }
        }
        y
    }

    /// Logits `[n][10]` of images flattened `[n, 64]` (data scale).
    pub fn logits(&self, images: &[f32]) -> Vec<[f32; CLASSES]> {
        let n = check_images(images);
        let mut acts = Vec::new();
        (0..n)
            .map(|i| {
                let z = self.forward_one(&images[i * PIXELS..(i + 1) * PIXELS], &mut acts);
                let mut o = [0f32; CLASSES];
                o.copy_from_slice(&z);
                o
            })
            .collect()
    }

    /// Class probabilities (softmax of the logits) of images flattened `[n, 64]`.
    pub fn probs(&self, images: &[f32]) -> Vec<[f32; CLASSES]> {
        self.logits(images).iter().map(softmax).collect()
    }

    /// Predicted class of each image.
    pub fn predict(&self, images: &[f32]) -> Vec<u8> {
        self.logits(images)
            .iter()
            .map(|z| argmax(z) as u8)
            .collect()
    }

    /// Share of images whose predicted class is the label.
    pub fn accuracy(&self, images: &[f32], labels: &[u8]) -> f64 {
        let p = self.predict(images);
        assert_eq!(p.len(), labels.len(), "one label per image");
        if p.is_empty() {
            return 0.0;
        }
        p.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / p.len() as f64
    }

    /// Post-ReLU activations of the last hidden layer, flattened `[n, feature_dim()]`.
    pub fn features(&self, images: &[f32]) -> Vec<f32> {
        let n = check_images(images);
        let mut acts = Vec::new();
        let mut out = Vec::with_capacity(n * self.feature_dim());
        for i in 0..n {
            self.forward_one(&images[i * PIXELS..(i + 1) * PIXELS], &mut acts);
            out.extend_from_slice(acts.last().unwrap());
        }
        out
    }

    /// Train a fresh classifier on images `x` (flattened `[n, 64]`, data scale) with labels
    /// `y`; `progress(epoch, mean loss)` after every epoch.
    pub fn train(
        tc: &ClassifierTrainConfig,
        x: &[f32],
        y: &[u8],
        mut progress: impl FnMut(usize, f64),
    ) -> Result<(Classifier, TrainLog)> {
        let n = check_images(x);
        if n == 0 || y.len() != n {
            return Err(DiffusionError::Invalid(format!(
                "classifier training: {n} images, {} labels",
                y.len()
            )));
        }
        if let Some(&l) = y.iter().find(|&&l| l as usize >= CLASSES) {
            return Err(DiffusionError::Invalid(format!("label {l} outside 0..10")));
        }
        if !(0.0..1.0).contains(&tc.dropout) {
            return Err(DiffusionError::Invalid(format!(
                "dropout {} must be in [0, 1)",
                tc.dropout
            )));
        }
        if tc.batch == 0 {
            return Err(DiffusionError::Invalid("batch must be > 0".into()));
        }
        let mut model = Classifier::new(&tc.widths, tc.seed)?;
        let mut m1: Vec<Layer> = model
            .layers
            .iter()
            .map(|l| Layer::zeros(l.n_out, l.n_in))
            .collect();
        let mut m2 = m1.clone();
        let mut grad = m1.clone();
        let mut rng = Rng::stream(tc.seed, 0xc2);
        let mut order: Vec<usize> = (0..n).collect();
        let steps_per_epoch = n.div_ceil(tc.batch);
        let total = (tc.epochs * steps_per_epoch).max(1);
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut t = 0i32;
        let mut acts = Vec::new();
        let mut img = vec![0f32; PIXELS];
        let mut tmp = vec![0f32; PIXELS];
        let mut epoch_loss = Vec::with_capacity(tc.epochs);
        let nl = model.layers.len();
        for epoch in 0..tc.epochs {
            rng.shuffle(&mut order);
            let mut loss_sum = 0.0f64;
            for chunk in order.chunks(tc.batch) {
                for g in grad.iter_mut() {
                    g.w.iter_mut().for_each(|v| *v = 0.0);
                    g.b.iter_mut().for_each(|v| *v = 0.0);
                }
                for &i in chunk {
                    img.copy_from_slice(&x[i * PIXELS..(i + 1) * PIXELS]);
                    if tc.shift_prob > 0.0
                        && (rng.uniform() as f32) < tc.shift_prob
                        && tc.shift_max > 0.0
                    {
                        let dx = tc.shift_max * (2.0 * rng.uniform() as f32 - 1.0);
                        let dy = tc.shift_max * (2.0 * rng.uniform() as f32 - 1.0);
                        shift_bilinear(&img, dx, dy, &mut tmp);
                        img.copy_from_slice(&tmp);
                    } else if tc.shift_prob > 0.0 && (rng.uniform() as f32) < tc.shift_prob {
                        let (dx, dy) = loop {
                            let d = (rng.below(3) as i32 - 1, rng.below(3) as i32 - 1);
                            if d != (0, 0) {
                                break d;
                            }
                        };
                        shift(&img, dx, dy, &mut tmp);
                        img.copy_from_slice(&tmp);
                    }
                    if tc.noise_std > 0.0 {
                        for v in img.iter_mut() {
                            *v += tc.noise_std * rng.normal() as f32;
                        }
                    }
                    let z = model.forward_train(&img, &mut acts, tc.dropout, &mut rng);
                    let p = softmax(&z.clone().try_into().unwrap());
                    let label = y[i] as usize;
                    loss_sum -= (p[label].max(1e-30) as f64).ln();
                    // dL/dz = p - onehot
                    let mut delta: Vec<f32> = p.to_vec();
                    delta[label] -= 1.0;
                    for l in (0..nl).rev() {
                        let layer = &model.layers[l];
                        let a = &acts[l];
                        let g = &mut grad[l];
                        for (o, &d) in delta.iter().enumerate() {
                            if d == 0.0 {
                                continue;
                            }
                            g.b[o] += d;
                            for (gw, av) in
                                g.w[o * layer.n_in..(o + 1) * layer.n_in].iter_mut().zip(a)
                            {
                                *gw += d * av;
                            }
                        }
                        if l > 0 {
                            let mut prev = vec![0f32; layer.n_in];
                            for (o, &d) in delta.iter().enumerate() {
                                if d == 0.0 {
                                    continue;
                                }
                                for (pv, w) in prev
                                    .iter_mut()
                                    .zip(&layer.w[o * layer.n_in..(o + 1) * layer.n_in])
                                {
                                    *pv += d * w;
                                }
                            }
                            let keep_inv = 1.0 / (1.0 - tc.dropout);
                            for (pv, av) in prev.iter_mut().zip(a) {
                                if *av <= 0.0 {
                                    *pv = 0.0;
                                } else if tc.dropout > 0.0 {
                                    *pv *= keep_inv;
                                }
                            }
                            delta = prev;
                        }
                    }
                }
                // Adam step (decoupled weight decay), cosine learning rate.
                let frac = t as f32 / total as f32;
                let lr = tc.lr
                    * (tc.lr_final_frac
                        + (1.0 - tc.lr_final_frac)
                            * 0.5
                            * (1.0 + (std::f32::consts::PI * frac).cos()));
                t += 1;
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let inv = 1.0 / chunk.len() as f32;
                for l in 0..nl {
                    let layer = &mut model.layers[l];
                    let step = |w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], wd: f32| {
                        for k in 0..w.len() {
                            let gk = g[k] * inv;
                            m[k] = b1 * m[k] + (1.0 - b1) * gk;
                            v[k] = b2 * v[k] + (1.0 - b2) * gk * gk;
                            let mh = m[k] / bc1;
                            let vh = v[k] / bc2;
                            w[k] -= lr * (mh / (vh.sqrt() + eps) + wd * w[k]);
                        }
                    };
                    step(
                        &mut layer.w,
                        &grad[l].w,
                        &mut m1[l].w,
                        &mut m2[l].w,
                        tc.weight_decay,
                    );
                    step(&mut layer.b, &grad[l].b, &mut m1[l].b, &mut m2[l].b, 0.0);
                }
            }
            let mean = loss_sum / n as f64;
            epoch_loss.push(mean);
            progress(epoch, mean);
        }
        Ok((model, TrainLog { epoch_loss }))
    }

    /// Serialize to safetensors bytes; `extra` entries go to the `info` object of the `thermo`
    /// metadata entry. The same model and `extra` always give the same bytes.
    pub fn to_bytes(&self, extra: &[(String, String)]) -> Result<Vec<u8>> {
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            owned.push((
                format!("fc{l}.weight"),
                vec![layer.n_out, layer.n_in],
                layer.w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
            owned.push((
                format!("fc{l}.bias"),
                vec![layer.n_out],
                layer.b.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
        let mut views = Vec::with_capacity(owned.len());
        for (name, shape, bytes) in &owned {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| DiffusionError::tensor(name, e.to_string()))?;
            views.push((name.clone(), view));
        }
        let info: serde_json::Map<String, serde_json::Value> = extra
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let header = serde_json::json!({ "format": FORMAT, "widths": self.widths(), "info": info });
        let mut meta = HashMap::new();
        meta.insert(crate::io::META_KEY.to_string(), header.to_string());
        safetensors::serialize(views, Some(meta))
            .map_err(|e| DiffusionError::SafeTensors(e.to_string()))
    }

    /// Write to a safetensors file (parent directories are created).
    pub fn save(&self, path: &Path, extra: &[(String, String)]) -> Result<()> {
        let bytes = self.to_bytes(extra)?;
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| DiffusionError::io(dir, e))?;
            }
        }
        std::fs::write(path, bytes).map_err(|e| DiffusionError::io(path, e))
    }

    /// Read from a safetensors file; errors name the file and the offending tensor.
    pub fn load(path: &Path) -> Result<Classifier> {
        let bytes = std::fs::read(path).map_err(|e| DiffusionError::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            DiffusionError::Tensor { tensor, msg } => DiffusionError::Tensor {
                tensor,
                msg: format!("{msg} (in classifier file {})", path.display()),
            },
            DiffusionError::SafeTensors(m) => {
                DiffusionError::SafeTensors(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Parse from safetensors bytes, checking the `thermo` metadata (format and widths) and every
    /// tensor: present, `F32` (or `F64`, converted), the expected shape, finite; and no
    /// unexpected tensors. Errors name the tensor (`<metadata>` for the header).
    pub fn from_bytes(bytes: &[u8]) -> Result<Classifier> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| DiffusionError::SafeTensors(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| DiffusionError::SafeTensors(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let bad = |m: String| DiffusionError::tensor("<metadata>", m);
        let text = meta.get(crate::io::META_KEY).ok_or_else(|| {
            bad(format!(
                "no `{}` entry: not a thermo classifier file",
                crate::io::META_KEY
            ))
        })?;
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("`thermo`: {e}")))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            other => {
                return Err(bad(format!(
                    "format {other:?} is not `{FORMAT}` (a U-Net file given as classifier?)"
                )))
            }
        }
        let widths: Vec<usize> = v
            .get("widths")
            .cloned()
            .ok_or_else(|| bad("no `widths`".into()))
            .and_then(|w| serde_json::from_value(w).map_err(|e| bad(format!("widths: {e}"))))?;
        validate_widths(&widths).map_err(|e| bad(e.to_string()))?;
        let nl = widths.len() - 1;
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        for l in 0..nl {
            expected.push((format!("fc{l}.weight"), vec![widths[l + 1], widths[l]]));
            expected.push((format!("fc{l}.bias"), vec![widths[l + 1]]));
        }
        for n in st.names() {
            if !expected.iter().any(|(s, _)| s == n) {
                return Err(DiffusionError::tensor(
                    n,
                    format!("unexpected tensor for a classifier of widths {widths:?}"),
                ));
            }
        }
        let mut vals: Vec<Vec<f32>> = Vec::with_capacity(expected.len());
        for (name, shape) in &expected {
            let t = st.tensor(name).map_err(|_| {
                DiffusionError::tensor(name, format!("missing (expected shape {shape:?})"))
            })?;
            if t.shape() != shape.as_slice() {
                return Err(DiffusionError::tensor(
                    name,
                    format!(
                        "wrong shape {:?}, expected {:?} for widths {widths:?}",
                        t.shape(),
                        shape
                    ),
                ));
            }
            let v = crate::io::tensor_values(name, &t)?;
            vals.push(v);
        }
        let mut it = vals.into_iter();
        let layers = (0..nl)
            .map(|l| Layer {
                n_out: widths[l + 1],
                n_in: widths[l],
                w: it.next().unwrap(),
                b: it.next().unwrap(),
            })
            .collect();
        Ok(Classifier { layers })
    }
}

/// Softmax of logits (max-subtracted).
pub fn softmax(z: &[f32; CLASSES]) -> [f32; CLASSES] {
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut p = [0f32; CLASSES];
    let mut s = 0.0f32;
    for (pi, &zi) in p.iter_mut().zip(z) {
        *pi = (zi - m).exp();
        s += *pi;
    }
    for pi in p.iter_mut() {
        *pi /= s;
    }
    p
}

/// Index of the largest entry (first on ties).
pub fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

/// What [`train_on_digits`] did and how well the result classifies (the JSON sidecar of a
/// committed classifier file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassifierReport {
    /// Hyper-parameters.
    pub train: ClassifierTrainConfig,
    /// Parameter count.
    pub params: usize,
    /// Seed of the train/test split (the U-Net's: [`crate::data::DEFAULT_SPLIT_SEED`]).
    pub split_seed: u64,
    /// Test fraction of the split.
    pub test_fraction: f64,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
    /// Seed of the validation carve-out.
    pub val_seed: u64,
    /// Images of the validation run's fit (training split minus validation).
    pub n_fit: usize,
    /// Validation images.
    pub n_val: usize,
    /// Test images.
    pub n_test: usize,
    /// Accuracy of the validation run on its fitted images (no augmentation).
    pub acc_fit: f64,
    /// Accuracy of the validation run on the validation images (used to choose
    /// hyper-parameters).
    pub acc_val: f64,
    /// Whether the returned model was refitted on the whole training split (fit + validation)
    /// with the same hyper-parameters; if not, it is the validation run's model.
    pub refit: bool,
    /// Accuracy of the returned model on the images it was fitted on.
    pub acc_train: f64,
    /// Accuracy of the returned model on the test split; `None` when the run was told not to
    /// look at it.
    pub acc_test: Option<f64>,
    /// Mean training cross-entropy per epoch of the returned model (nats, augmented batches).
    pub epoch_loss: Vec<f64>,
}

/// How [`train_on_digits`] uses the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    /// Seed of the train/test split (the U-Net's by default).
    pub split_seed: u64,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
    /// Seed of the validation carve-out.
    pub val_seed: u64,
    /// Refit on the whole training split after the validation run.
    pub refit: bool,
    /// Measure test accuracy (off while choosing hyper-parameters).
    pub read_test: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            split_seed: crate::data::DEFAULT_SPLIT_SEED,
            val_fraction: DEFAULT_VAL_FRACTION,
            val_seed: DEFAULT_VAL_SEED,
            refit: true,
            read_test: true,
        }
    }
}

/// Train a classifier on the digits' training split (`Split::new(n, DEFAULT_TEST_FRACTION,
/// split_seed)`): first on the split minus a validation carve-out ([`crate::data::carve_validation`]),
/// reporting validation accuracy; then, if `p.refit`, again with the same hyper-parameters on
/// the whole training split (the returned model). Test accuracy of the returned model only if
/// `p.read_test`.
pub fn train_on_digits(
    digits: &crate::data::Digits,
    tc: &ClassifierTrainConfig,
    p: &Protocol,
    mut progress: impl FnMut(usize, f64),
) -> Result<(Classifier, ClassifierReport)> {
    let Protocol {
        split_seed,
        val_fraction,
        val_seed,
        refit,
        read_test,
    } = p.clone();
    let split =
        crate::data::Split::new(digits.len(), crate::data::DEFAULT_TEST_FRACTION, split_seed)?;
    let (fit, val) = crate::data::carve_validation(&split.train, val_fraction, val_seed);
    let labels = |idx: &[usize]| -> Vec<u8> { idx.iter().map(|&i| digits.labels[i]).collect() };
    let x_fit = digits.unit_matrix(&fit);
    let (model, log) = Classifier::train(tc, &x_fit, &labels(&fit), &mut progress)?;
    let acc_fit = model.accuracy(&x_fit, &labels(&fit));
    let acc_val = model.accuracy(&digits.unit_matrix(&val), &labels(&val));
    let (model, log, acc_train) = if refit {
        let x = digits.unit_matrix(&split.train);
        let (m, l) = Classifier::train(tc, &x, &labels(&split.train), &mut progress)?;
        let a = m.accuracy(&x, &labels(&split.train));
        (m, l, a)
    } else {
        (model, log, acc_fit)
    };
    let acc_test =
        read_test.then(|| model.accuracy(&digits.unit_matrix(&split.test), &labels(&split.test)));
    let report = ClassifierReport {
        train: tc.clone(),
        params: model.param_count(),
        split_seed,
        test_fraction: crate::data::DEFAULT_TEST_FRACTION,
        val_fraction,
        val_seed,
        n_fit: fit.len(),
        n_val: val.len(),
        n_test: split.test.len(),
        acc_fit,
        acc_val,
        refit,
        acc_train,
        acc_test,
        epoch_loss: log.epoch_loss,
    };
    Ok((model, report))
}
