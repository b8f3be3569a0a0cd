//! How well scores rank and predict outcomes: ROC AUC with a bootstrap interval, log-loss,
//! precision and recall at a threshold, top-decile lift, calibration table, ROC curve.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Indices sorted by score, descending (ties in index order, so results are deterministic).
fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Weighted ROC AUC over examples in descending-score order (ties count one half).
fn auc_sorted(order: &[usize], scores: &[f64], y: &[bool], weight: impl Fn(usize) -> f64) -> f64 {
    let (mut pos_above, mut total_pos, mut total_neg, mut sum) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // One group of tied scores.
        let mut j = i;
        let (mut gp, mut gn) = (0.0, 0.0);
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            let w = weight(order[j]);
            if y[order[j]] {
                gp += w;
            } else {
                gn += w;
            }
            j += 1;
        }
        // Each negative in the group is outranked by every positive above it, half of the tied.
        sum += gn * (pos_above + 0.5 * gp);
        pos_above += gp;
        total_pos += gp;
        total_neg += gn;
        i = j;
    }
    if total_pos == 0.0 || total_neg == 0.0 {
        f64::NAN
    } else {
        sum / (total_pos * total_neg)
    }
}

/// ROC AUC: the chance a random converter scores above a random non-converter.
pub fn roc_auc(scores: &[f64], y: &[bool]) -> f64 {
    let order = by_score_desc(scores);
    auc_sorted(&order, scores, y, |_| 1.0)
}

/// 95% percentile bootstrap interval of the AUC (`rounds` resamples, seeded).
pub fn auc_interval(scores: &[f64], y: &[bool], rounds: usize, seed: u64) -> (f64, f64) {
    let n = scores.len();
    let order = by_score_desc(scores);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut counts = vec![0u32; n];
    let mut aucs: Vec<f64> = (0..rounds)
        .map(|_| {
            counts.iter_mut().for_each(|c| *c = 0);
            for _ in 0..n {
                counts[rng.random_range(0..n)] += 1;
            }
            auc_sorted(&order, scores, y, |i| counts[i] as f64)
        })
        .filter(|a| a.is_finite())
        .collect();
    if aucs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    aucs.sort_by(f64::total_cmp);
    let q = |p: f64| aucs[((aucs.len() - 1) as f64 * p).round() as usize];
    (q(0.025), q(0.975))
}

/// Mean log-loss of probabilities (clipped to [1e-15, 1 − 1e-15]).
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&pi, &yi)| {
            let pi = pi.clamp(1e-15, 1.0 - 1e-15);
            if yi {
                -pi.ln()
            } else {
                -(1.0 - pi).ln()
            }
        })
        .sum();
    total / p.len().max(1) as f64
}

/// Precision and recall of "score ≥ threshold" (precision NaN when nothing is flagged).
pub fn precision_recall(scores: &[f64], y: &[bool], threshold: f64) -> (f64, f64, usize) {
    let (mut tp, mut flagged, mut pos) = (0usize, 0usize, 0usize);
    for (&s, &yi) in scores.iter().zip(y) {
        if s >= threshold {
            flagged += 1;
            tp += yi as usize;
        }
        pos += yi as usize;
    }
    let precision = if flagged == 0 {
        f64::NAN
    } else {
        tp as f64 / flagged as f64
    };
    let recall = if pos == 0 {
        f64::NAN
    } else {
        tp as f64 / pos as f64
    };
    (precision, recall, flagged)
}

/// Conversion rate among the top 10% by score over the overall rate.
pub fn top_decile_lift(scores: &[f64], y: &[bool]) -> f64 {
    let order = by_score_desc(scores);
    let k = scores.len().div_ceil(10).max(1);
    let top = order[..k.min(order.len())]
        .iter()
        .filter(|&&i| y[i])
        .count() as f64
        / k as f64;
    let overall = y.iter().filter(|&&v| v).count() as f64 / y.len().max(1) as f64;
    top / overall
}

/// One row of the calibration table.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationBin {
    /// Lower edge of predicted probability.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Leads in the bin.
    pub leads: usize,
    /// Mean predicted probability.
    pub predicted: f64,
    /// Observed conversion rate.
    pub observed: f64,
}

/// Ten equal-width bins of predicted probability; empty bins are left out.
pub fn calibration(p: &[f64], y: &[bool]) -> Vec<CalibrationBin> {
    let mut sums = [(0usize, 0.0f64, 0usize); 10];
    for (&pi, &yi) in p.iter().zip(y) {
        let b = ((pi * 10.0) as usize).min(9);
        sums[b].0 += 1;
        sums[b].1 += pi;
        sums[b].2 += yi as usize;
    }
    sums.iter()
        .enumerate()
        .filter(|(_, s)| s.0 > 0)
        .map(|(b, &(n, sp, pos))| CalibrationBin {
            from: b as f64 / 10.0,
            to: (b + 1) as f64 / 10.0,
            leads: n,
            predicted: sp / n as f64,
            observed: pos as f64 / n as f64,
        })
        .collect()
}

/// ROC curve points (false positive rate, true positive rate), at most ~200 points.
pub fn roc_curve(scores: &[f64], y: &[bool]) -> Vec<(f64, f64)> {
    let order = by_score_desc(scores);
    let pos = y.iter().filter(|&&v| v).count().max(1) as f64;
    let neg = (y.len() - y.iter().filter(|&&v| v).count()).max(1) as f64;
    let step = (order.len() / 200).max(1);
    let mut pts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            if y[order[j]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        if j == order.len() || j / step != i / step {
            pts.push((fp / neg, tp / pos));
        }
        i = j;
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties() {
        // Positives 3 and 1, negatives 2 and 1: pairs (3>2, 3>1, 1<2, 1=1) → (1+1+0+0.5)/4.
        let s = [3.0, 1.0, 2.0, 1.0];
        let y = [true, true, false, false];
        assert!((roc_auc(&s, &y) - 0.625).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 0.0], &[true, false]), 1.0);
        assert_eq!(roc_auc(&[0.0, 1.0], &[true, false]), 0.0);
    }

    #[test]
    fn interval_contains_the_estimate() {
        let s: Vec<f64> = (0..500).map(|i| (i % 37) as f64).collect();
        let y: Vec<bool> = (0..500).map(|i| (i % 37) > 20 || i % 11 == 0).collect();
        let a = roc_auc(&s, &y);
        let (lo, hi) = auc_interval(&s, &y, 300, 1);
        assert!(lo < a && a < hi, "{lo} {a} {hi}");
        assert!(hi - lo < 0.2);
    }

    #[test]
    fn lift_precision_recall_calibration() {
        let s: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y: Vec<bool> = (0..100).map(|i| i >= 90).collect();
        assert!((top_decile_lift(&s, &y) - 10.0).abs() < 1e-12);
        let (p, r, n) = precision_recall(&s, &y, 80.0);
        assert_eq!(n, 20);
        assert!((p - 0.5).abs() < 1e-12 && (r - 1.0).abs() < 1e-12);
        let probs: Vec<f64> = s.iter().map(|v| v / 100.0).collect();
        let cal = calibration(&probs, &y);
        assert_eq!(cal.len(), 10);
        assert_eq!(cal[9].observed, 1.0);
        assert_eq!(cal[0].observed, 0.0);
        let curve = roc_curve(&s, &y);
        assert_eq!(*curve.last().unwrap(), (1.0, 1.0));
    }
}
