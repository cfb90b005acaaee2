//! The discriminative classifier: logistic regression over hashed features
//! (`crate::features`), trained online on errors and near-errors (a thick threshold), a
//! message repeated until it is on the right side or `MAX_STEPS` runs out, ham weighted up.
//! Each learning also rehearses one message of each class learned before (`teach`), so that
//! a run of one class — `peagectl learn spam DIR` — does not drag the model to that class:
//! over time every learned message is seen again, interleaved, as several passes would.
//!
//! Deterministic by construction, because every node trains it at apply, in log order, and
//! must end with the same weights: the arithmetic is IEEE `f64` additions, multiplications,
//! divisions and square roots in a fixed order (features sorted), no library `exp`, whose
//! last bits may differ between C libraries; weights are stored as `f32`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::features::Features;

/// The learning rate of one step.
const RATE: f64 = 0.6;
/// A message learned as spam is stepped on until its probability is at least this (ham: at
/// most 1 − this).
const THICK: f64 = 0.95;
/// Most steps on one message per learning.
const MAX_STEPS: usize = 8;
/// A false positive costs more than a missed spam: ham steps count this much more.
const HAM_WEIGHT: f64 = 2.0;
/// Weights stay within ± this, so that one feature never decides alone.
const MAX_WEIGHT: f64 = 8.0;

/// Where the weights are read from (the in-memory model, or the database inside an apply).
pub trait Weights {
    fn weight(&self, bucket: u32) -> f32;
}

/// Where the weights changed by one step are written before the next step reads them.
pub trait WeightStore: Weights {
    fn store(&mut self, changed: Vec<(u32, f32)>);
}

/// The messages learned before, for rehearsal.
pub trait Lessons {
    /// The features of the next message learned as `spam` (or as ham) after this class's
    /// cursor, in fingerprint order, wrapping around; the cursor moves to it.
    fn next_lesson(&mut self, spam: bool) -> Option<Features>;
}

/// Learns `f` as `spam`, then rehearses the next earlier lesson of the other class and of
/// the same class.
pub fn teach(store: &mut dyn WeightStore, lessons: &mut dyn Lessons, f: &Features, spam: bool) {
    let changed = learn(store, f, spam);
    store.store(changed);
    for class in [!spam, spam] {
        if let Some(past) = lessons.next_lesson(class) {
            let changed = learn(store, &past, class);
            store.store(changed);
        }
    }
}

/// Weights over a committed model: what a run of lessons changed, on top of it (the node's
/// apply batch reads and writes through one, so that its lessons see each other).
pub struct Overlay<'a> {
    base: &'a Model,
    changed: HashMap<u32, f32>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a Model, changed: HashMap<u32, f32>) -> Overlay<'a> {
        Overlay { base, changed }
    }

    /// What the lessons changed, bucket by bucket.
    pub fn into_changes(self) -> HashMap<u32, f32> {
        self.changed
    }
}

impl Weights for Overlay<'_> {
    fn weight(&self, bucket: u32) -> f32 {
        match self.changed.get(&bucket) {
            Some(w) => *w,
            None => self.base.weight(bucket),
        }
    }
}

impl WeightStore for Overlay<'_> {
    fn store(&mut self, changed: Vec<(u32, f32)>) {
        self.changed.extend(changed);
    }
}

/// Lessons kept in memory, by class then fingerprint (what the state keeps in
/// `bayes_learned`, indexed by class and fingerprint).
#[derive(Default)]
pub struct KeptLessons {
    by_class: [BTreeMap<String, Features>; 2],
    cursors: [String; 2],
}

impl KeptLessons {
    /// Keeps (or moves to the other class) a learned message.
    pub fn keep(&mut self, fingerprint: String, spam: bool, f: Features) {
        self.by_class[!spam as usize].remove(&fingerprint);
        self.by_class[spam as usize].insert(fingerprint, f);
    }
}

impl Lessons for KeptLessons {
    fn next_lesson(&mut self, spam: bool) -> Option<Features> {
        let (class, cursor) = (&self.by_class[spam as usize], &self.cursors[spam as usize]);
        let after = (Bound::Excluded(cursor.clone()), Bound::Unbounded);
        let (k, f) = class.range(after).next().or_else(|| class.iter().next())?;
        let f = f.clone();
        self.cursors[spam as usize] = k.clone();
        Some(f)
    }
}

/// Every bucket's weight, in memory.
#[derive(Clone)]
pub struct Model(Vec<f32>);

impl Default for Model {
    fn default() -> Self {
        Model(vec![0.0; crate::features::BUCKETS as usize])
    }
}

impl Model {
    pub fn set(&mut self, bucket: u32, weight: f32) {
        if let Some(w) = self.0.get_mut(bucket as usize) {
            *w = weight;
        }
    }

    /// Learns `f` as `spam` here, without rehearsal.
    pub fn learn(&mut self, f: &Features, spam: bool) {
        let changed = learn(self, f, spam);
        self.store(changed);
    }

    /// The buckets whose weight is not zero.
    pub fn nonzero(&self) -> usize {
        self.0.iter().filter(|w| **w != 0.0).count()
    }
}

impl Weights for Model {
    fn weight(&self, bucket: u32) -> f32 {
        self.0.get(bucket as usize).copied().unwrap_or(0.0)
    }
}

impl WeightStore for Model {
    fn store(&mut self, changed: Vec<(u32, f32)>) {
        for (bucket, w) in changed {
            self.set(bucket, w);
        }
    }
}

/// Each feature's value: the vector has unit length.
fn feature_value(f: &Features) -> f64 {
    1.0 / (f.0.len().max(1) as f64).sqrt()
}

/// w·x for the message's features.
pub fn margin<W: Weights + ?Sized>(weights: &W, f: &Features) -> f64 {
    let x = feature_value(f);
    f.0.iter().map(|&b| f64::from(weights.weight(b)) * x).sum()
}

/// The probability that a message with this margin is spam.
pub fn probability(margin: f64) -> f64 {
    1.0 / (1.0 + exp(-margin))
}

/// The new values of the weights that learning `f` as `spam` changes (none when the model
/// already puts it beyond the thick threshold), by bucket. `f`'s buckets are distinct, as
/// `features_of` and the replicated state give them.
pub fn learn(weights: &dyn Weights, f: &Features, spam: bool) -> Vec<(u32, f32)> {
    // The message's weights, stepped in place: read once from the model, not once a step.
    let mut current: Vec<f32> = f.0.iter().map(|&b| weights.weight(b)).collect();
    let mut stepped = false;
    let x = feature_value(f);
    let (target, weight) = if spam { (1.0, 1.0) } else { (0.0, HAM_WEIGHT) };
    for _ in 0..MAX_STEPS {
        let m: f64 = current.iter().map(|&w| f64::from(w) * x).sum();
        let p = probability(m);
        let right = if spam { p >= THICK } else { p <= 1.0 - THICK };
        if right {
            break;
        }
        let step = RATE * weight * (target - p) * x;
        for w in &mut current {
            *w = (f64::from(*w) + step).clamp(-MAX_WEIGHT, MAX_WEIGHT) as f32;
        }
        stepped = true;
    }
    if !stepped {
        return Vec::new();
    }
    f.0.iter().copied().zip(current).collect()
}

/// e^x from basic arithmetic alone: x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor
/// series (to 1e-17 there), times 2^k built from the exponent bits.
fn exp(x: f64) -> f64 {
    const LN2: f64 = std::f64::consts::LN_2;
    let x = x.clamp(-700.0, 700.0);
    let k = (x / LN2 + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let r = x - k as f64 * LN2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=17 {
        term = term * r / n as f64;
        sum += term;
    }
    sum * f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_agrees_with_the_library_to_the_last_few_bits() {
        for i in -2000..=2000 {
            let x = i as f64 / 50.0;
            let (ours, std) = (exp(x), x.exp());
            assert!(((ours - std) / std).abs() < 1e-14, "{x}: {ours} vs {std}");
        }
        assert!(probability(-1000.0) >= 0.0 && probability(1000.0) <= 1.0);
    }

    #[test]
    fn learning_moves_a_message_beyond_the_thick_threshold_and_stops_there() {
        let mut m = Model::default();
        let spam = Features(vec![0, 10, 20, 30]);
        let ham = Features(vec![0, 40, 50, 30]);
        for _ in 0..20 {
            m.learn(&spam, true);
            m.learn(&ham, false);
        }
        assert!(probability(margin(&m, &spam)) >= THICK);
        assert!(probability(margin(&m, &ham)) <= 1.0 - THICK);
        assert!(learn(&m, &spam, true).is_empty(), "nothing left to learn");
        // Relearning as the other class moves it back.
        assert!(!learn(&m, &spam, false).is_empty());
    }

    #[test]
    fn rehearsal_keeps_a_run_of_one_class_from_taking_the_model_over() {
        // Spam and ham share most features (headers, greetings): a long run of ham after
        // the spam would pull the shared weights, and the spam, to ham.
        let spam = |i: u32| Features(vec![0, 1, 2, 3, 100 + i % 5]);
        let ham = |i: u32| Features(vec![0, 1, 2, 3, 200 + i % 50]);
        let run = |rehearse: bool| {
            let mut m = Model::default();
            let mut kept = KeptLessons::default();
            for (i, spam_too) in (0..20)
                .map(|i| (i, true))
                .chain((0..400).map(|i| (i, false)))
            {
                let f = if spam_too { spam(i) } else { ham(i) };
                let fingerprint =
                    format!("{:08x}", i.wrapping_mul(2654435761u32) ^ spam_too as u32);
                kept.keep(fingerprint, spam_too, f.clone());
                if rehearse {
                    teach(&mut m, &mut kept, &f, spam_too);
                } else {
                    m.learn(&f, spam_too);
                }
            }
            probability(margin(&m, &spam(7)))
        };
        assert!(run(true) > 0.8, "with rehearsal: {}", run(true));
        assert!(
            run(false) < 0.5,
            "without rehearsal the run drags spam to ham: {}",
            run(false)
        );
    }

    #[test]
    fn the_same_lessons_in_the_same_order_give_the_same_bits() {
        let lessons: Vec<(Features, bool)> = (0..200u32)
            .map(|i| {
                (
                    Features(vec![0, i % 17 + 1, i % 29 + 40, i % 7 + 90]),
                    i % 3 == 0,
                )
            })
            .collect();
        let train = || {
            let mut m = Model::default();
            for (f, spam) in &lessons {
                m.learn(f, *spam);
            }
            m.0.iter().map(|w| w.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(train(), train());
    }

    /// Nodes of two versions must learn the same bits (a rolling upgrade applies the same
    /// log on both): `learn` keeps the arithmetic of stepping each feature's weight as read
    /// through the changes so far, feature by feature, in bucket order.
    #[test]
    fn learning_keeps_the_arithmetic_of_stepping_feature_by_feature() {
        fn stepped_one_by_one(weights: &dyn Weights, f: &Features, spam: bool) -> Vec<(u32, f32)> {
            let mut changed: BTreeMap<u32, f32> = BTreeMap::new();
            let x = feature_value(f);
            let (target, weight) = if spam { (1.0, 1.0) } else { (0.0, HAM_WEIGHT) };
            let read = |c: &BTreeMap<u32, f32>, b| c.get(&b).copied().unwrap_or(weights.weight(b));
            for _ in 0..MAX_STEPS {
                let m: f64 = f.0.iter().map(|&b| f64::from(read(&changed, b)) * x).sum();
                let p = probability(m);
                if (spam && p >= THICK) || (!spam && p <= 1.0 - THICK) {
                    break;
                }
                let step = RATE * weight * (target - p) * x;
                for &b in &f.0 {
                    let w = (f64::from(read(&changed, b)) + step).clamp(-MAX_WEIGHT, MAX_WEIGHT);
                    changed.insert(b, w as f32);
                }
            }
            changed.into_iter().collect()
        }
        let mut m = Model::default();
        for i in 0..300u32 {
            let f = Features(vec![0, i % 13 + 1, i % 31 + 20, i % 5 + 60, 70 + i]);
            let spam = i % 4 != 0;
            let ours = learn(&m, &f, spam);
            assert_eq!(ours, stepped_one_by_one(&m, &f, spam), "lesson {i}");
            m.store(ours);
        }
    }
}
