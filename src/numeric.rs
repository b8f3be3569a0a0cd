//! Numeric helpers defined once for the core, `gen` and `train`.

/// The logistic function `1 / (1 + e^−z)`, computed without overflow on either side.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `n` as an integer when it is one that an f64 holds exactly (|n| < 2^53).
pub fn exact_integer(n: f64) -> Option<i64> {
    (n.is_finite() && n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0).then_some(n as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_symmetric_and_saturates_without_nan() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }

    #[test]
    fn integers_are_exact_up_to_2_pow_53() {
        assert_eq!(exact_integer(250.0), Some(250));
        assert_eq!(exact_integer(-3.0), Some(-3));
        assert_eq!(exact_integer(2.5), None);
        assert_eq!(exact_integer(9_007_199_254_740_992.0), None);
        assert_eq!(exact_integer(f64::NAN), None);
    }
}
