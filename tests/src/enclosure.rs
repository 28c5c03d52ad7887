//! The layers' specification as a third backend: [`Enclosure`] runs the very same layer
//! code as the private model and its twin, but every tensor is an interval per element
//! (integers in units of `2^-f`) built from the ideal functionalities of
//! [`triad_spec::layers`]. The private run's opened values must lie inside.
//!
//! Local linear maps with 0/1 coefficients (sums, reshapes, broadcasts, pooling sums) act
//! on the lower and upper bounds separately, through the plaintext twin's own tensor code
//! ([`Plain`]); bilinear products go through [`Plain`] on the midpoint-radius forms and
//! then [`triad_spec::layers::product`]. Values are integers stored in `f64`, exact below
//! `2^53`: [`Enclosure::product`] checks its sums stay below `2^52` and fails otherwise.
//! Only the exact-arithmetic layers are covered (convolution, linear, average pooling,
//! ReLU, flatten, and SGD); the approximations return an error.

use triad_fixed::FixedConfig;
use triad_layers::{Backend, PTensor, Plain};
use triad_ring::Pool2dParams;
use triad_sharing::{Error, Product, Result};
use triad_spec::layers as spec;
use triad_transport::{PartyId, ScopeGuard};

/// The interval backend at `fixed.frac_bits` fractional bits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Enclosure {
    /// The fixed-point configuration of the private run it encloses.
    pub fixed: FixedConfig,
}

/// A tensor of intervals: `lo ≤ v ≤ hi` elementwise, in units of `2^-f`.
#[derive(Clone, Debug)]
pub struct ETensor {
    /// Lower bounds.
    pub lo: PTensor,
    /// Upper bounds.
    pub hi: PTensor,
}

impl ETensor {
    fn exact(t: PTensor) -> Self {
        ETensor { lo: t.clone(), hi: t }
    }
    /// The intervals as integers.
    pub fn intervals(&self) -> impl Iterator<Item = spec::Interval> + '_ {
        self.lo.data.iter().zip(&self.hi.data).map(|(&a, &b)| (a as i128, b as i128))
    }
    fn from_intervals(shape: &[usize], it: impl Iterator<Item = spec::Interval>) -> Result<Self> {
        let (lo, hi): (Vec<f64>, Vec<f64>) = it.map(|(a, b)| (a as f64, b as f64)).unzip();
        Ok(ETensor { lo: PTensor::new(shape.to_vec(), lo)?, hi: PTensor::new(shape.to_vec(), hi)? })
    }
    /// Index and interval of the first element of `units` (fixed-point integers) outside
    /// its interval, if any.
    pub fn first_outside(&self, units: &[i128]) -> Option<(usize, i128, spec::Interval)> {
        self.intervals()
            .zip(units)
            .enumerate()
            .find(|(_, ((lo, hi), v))| *v < lo || *v > hi)
            .map(|(i, (iv, v))| (i, *v, iv))
    }
    /// The widest interval, in units.
    pub fn max_width(&self) -> i128 {
        self.intervals().map(|(a, b)| b - a).max().unwrap_or(0)
    }
}

fn unsupported(what: &str) -> Error {
    Error::Usage(format!("the enclosure backend does not cover {what} (see triad_spec::approx)"))
}

fn both(x: &ETensor, f: impl Fn(&PTensor) -> Result<PTensor>) -> Result<ETensor> {
    Ok(ETensor { lo: f(&x.lo)?, hi: f(&x.hi)? })
}

fn elementwise(
    a: &ETensor,
    b: &ETensor,
    f: impl Fn(spec::Interval, spec::Interval) -> spec::Interval,
) -> Result<ETensor> {
    if a.lo.shape != b.lo.shape {
        return Err(Error::Usage(format!("enclosure: shapes {:?} and {:?}", a.lo.shape, b.lo.shape)));
    }
    ETensor::from_intervals(&a.lo.shape, a.intervals().zip(b.intervals()).map(|(x, y)| f(x, y)))
}

/// Twice the midpoints, twice the radii and the absolute doubled midpoints.
fn mid_rad(x: &ETensor) -> Result<(PTensor, PTensor, PTensor)> {
    let c = x.lo.zip(&x.hi, "mid", |a, b| a + b)?;
    let r = x.hi.zip(&x.lo, "rad", |a, b| a - b)?;
    let abs = c.map(f64::abs);
    Ok((c, r, abs))
}

impl Enclosure {
    fn encode(&self, v: f64) -> Result<f64> {
        Ok(self.fixed.encode(v)? as i64 as f64)
    }
}

impl Backend for Enclosure {
    type T = ETensor;

    fn dims(&self, x: &ETensor) -> Vec<usize> {
        x.lo.shape.clone()
    }
    fn input(&self, _owner: PartyId, data: Option<&[f64]>, shape: &[usize]) -> Result<ETensor> {
        let data = data.ok_or_else(|| Error::Usage("the enclosure backend needs the data".into()))?;
        let enc: Vec<f64> = data.iter().map(|&v| self.encode(v)).collect::<Result<_>>()?;
        Ok(ETensor::exact(PTensor::new(shape.to_vec(), enc)?))
    }
    fn constant(&self, shape: &[usize], v: f64) -> Result<ETensor> {
        Ok(ETensor::exact(PTensor::full(shape.to_vec(), self.encode(v)?)))
    }
    fn open(&self, _to: PartyId, x: &ETensor) -> Result<Option<Vec<f64>>> {
        let s = self.fixed.scale();
        Ok(Some(x.lo.data.iter().zip(&x.hi.data).map(|(a, b)| (a + b) / 2.0 / s).collect()))
    }
    fn scope(&self, _name: &str) -> Option<ScopeGuard> {
        None
    }
    fn copy(&self, x: &ETensor) -> Result<ETensor> {
        Ok(x.clone())
    }
    fn add(&self, a: &ETensor, b: &ETensor) -> Result<ETensor> {
        elementwise(a, b, spec::add)
    }
    fn sub(&self, a: &ETensor, b: &ETensor) -> Result<ETensor> {
        elementwise(a, b, spec::sub)
    }
    fn product(&self, op: Product, a: &ETensor, b: &ETensor) -> Result<ETensor> {
        let (ca, ra, aa) = mid_rad(a)?;
        let (cb, rb, ab) = mid_rad(b)?;
        let s_c = Plain.product(op, &ca, &cb)?;
        let r1 = Plain.product(op, &aa, &rb)?;
        let r2 = Plain.product(op, &ra, &ab)?;
        let r3 = Plain.product(op, &ra, &rb)?;
        let limit = 2f64.powi(52);
        let f = self.fixed.frac_bits;
        let iv = s_c.data.iter().zip(&r1.data).zip(&r2.data).zip(&r3.data).map(|(((&c, &x), &y), &z)| {
            let r = x + y + z;
            if c.abs() + r >= limit {
                None
            } else {
                Some(spec::product(c as i128, r as i128, f))
            }
        });
        let iv: Option<Vec<spec::Interval>> = iv.collect();
        let iv = iv.ok_or_else(|| Error::Usage("enclosure: a product's sums reach 2^52 (not exact in f64)".into()))?;
        ETensor::from_intervals(&s_c.shape, iv.into_iter())
    }
    fn scale(&self, x: &ETensor, c: f64) -> Result<ETensor> {
        // Encoded with as many fractional bits as the private backend gives it.
        let bits = triad_layers::scale_bits(self.fixed.frac_bits, c);
        let e = triad_fixed::FixedConfig { frac_bits: bits }.encode(c)? as i64 as i128;
        ETensor::from_intervals(&x.lo.shape, x.intervals().map(|v| spec::scale(v, e, bits)))
    }
    fn mask(&self, x: &ETensor, m: &ETensor) -> Result<ETensor> {
        // Masks (from `relu`) are 0/1 integers, not fixed-point values, as on shares.
        elementwise(x, m, spec::mask)
    }
    fn sum_axis(&self, x: &ETensor, axis: usize) -> Result<ETensor> {
        both(x, |t| Plain.sum_axis(t, axis))
    }
    fn reshape(&self, x: ETensor, shape: &[usize]) -> Result<ETensor> {
        Ok(ETensor { lo: Plain.reshape(x.lo, shape)?, hi: Plain.reshape(x.hi, shape)? })
    }
    fn broadcast(&self, x: &ETensor, shape: &[usize]) -> Result<ETensor> {
        both(x, |t| Plain.broadcast(t, shape))
    }
    fn pool_sum(&self, x: &ETensor, p: &Pool2dParams) -> Result<ETensor> {
        both(x, |t| Plain.pool_sum(t, p))
    }
    fn pool_sum_backward(&self, g: &ETensor, p: &Pool2dParams) -> Result<ETensor> {
        both(g, |t| Plain.pool_sum_backward(t, p))
    }
    fn relu(&self, x: &ETensor) -> Result<(ETensor, ETensor)> {
        let (y, m): (Vec<_>, Vec<_>) = x.intervals().map(spec::relu).unzip();
        Ok((ETensor::from_intervals(&x.lo.shape, y.into_iter())?, ETensor::from_intervals(&x.lo.shape, m.into_iter())?))
    }
    fn maxpool(&self, _x: &ETensor, _p: &Pool2dParams) -> Result<(ETensor, ETensor)> {
        Err(unsupported("max pooling"))
    }
    fn maxpool_backward(&self, _g: &ETensor, _onehot: &ETensor, _p: &Pool2dParams) -> Result<ETensor> {
        Err(unsupported("max pooling"))
    }
    fn tanh(&self, _x: &ETensor) -> Result<ETensor> {
        Err(unsupported("tanh"))
    }
    fn sigmoid(&self, _x: &ETensor) -> Result<ETensor> {
        Err(unsupported("sigmoid"))
    }
    fn concat(&self, parts: &[&ETensor], axis: usize) -> Result<ETensor> {
        let lo: Vec<&PTensor> = parts.iter().map(|p| &p.lo).collect();
        let hi: Vec<&PTensor> = parts.iter().map(|p| &p.hi).collect();
        Ok(ETensor { lo: Plain.concat(&lo, axis)?, hi: Plain.concat(&hi, axis)? })
    }
    fn slice(&self, x: &ETensor, axis: usize, start: usize, len: usize) -> Result<ETensor> {
        both(x, |t| Plain.slice(t, axis, start, len))
    }
    fn add_public(&self, x: &ETensor, c: &[f64], c_dims: &[usize]) -> Result<ETensor> {
        let enc: Vec<f64> = c.iter().map(|&v| self.encode(v)).collect::<Result<_>>()?;
        both(x, |t| Plain.add_public(t, &enc, c_dims))
    }
    fn mul_public(&self, _x: &ETensor, _c: &[f64], _c_dims: &[usize]) -> Result<ETensor> {
        Err(unsupported("products by public tensors"))
    }
    fn softmax(&self, _x: &ETensor) -> Result<ETensor> {
        Err(unsupported("softmax"))
    }
    fn ln(&self, _x: &ETensor) -> Result<ETensor> {
        Err(unsupported("ln"))
    }
    fn inv_sqrt(&self, _x: &ETensor) -> Result<ETensor> {
        Err(unsupported("inv_sqrt"))
    }
    fn all_in_range(&self, x: &ETensor, log2_bound: u32) -> Result<bool> {
        // In range for certain: every enclosure inside (ring units).
        let b = self.encode(2f64.powi(log2_bound as i32))?;
        Ok(x.lo.data.iter().zip(&x.hi.data).all(|(&lo, &hi)| lo >= -b && hi < b))
    }
}
