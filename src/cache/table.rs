//! A bounded, weighted, concurrent map from 64-bit keys to values, with CLOCK
//! eviction: exactly what the session cache needs, and no more.
//!
//! # Why not moka
//!
//! moka keeps, per entry, an `Arc`'d entry with its atomics, nodes in its access
//! and write order deques, a timer wheel node, a bucket of its concurrent hash
//! table and a slot of its frequency sketch: about 270 bytes beyond the value,
//! measured. A cached session is about 600 bytes, so moka was a third of the
//! cache. Here an entry is one slot of a `Vec` (key, value, weight, a reference
//! bit) and four bytes of a `hashbrown` index: about 70 bytes in all.
//!
//! # How it works
//!
//! The keys are spread over shards, each a `RwLock` around a `Vec` of slots and an
//! index from key to slot. A lookup takes the read lock and sets the slot's
//! reference bit (only when it was clear, so a hot entry's cache line stays
//! shared between cores). An insertion takes the write lock and, while the table
//! is over its budget, moves the shard's clock hand: a referenced slot loses its
//! bit and is passed over, the first unreferenced one is evicted (CLOCK, the usual
//! approximation of LRU). A slot past its end is evicted whatever its bit.
//!
//! The budget covers the whole heap: the values' own weights **and** the slots'
//! `Vec` and the index at their allocated capacities, so a full cache holds the
//! bytes it was given, not that plus its bookkeeping. It is one budget for all
//! shards (an atomic sum), so that shards holding a few more keys than others do
//! not leave the rest of the budget unused. Two insertions into two shards at
//! once may both take the last room: the sum can pass the budget by an entry.
//!
//! A slot keeps 32 bits of the 64-bit key: a slot found under another key with the
//! same 32 bits is for the caller to refuse (the session cache compares the
//! token's fingerprint), and an insertion then replaces it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

/// What the table needs to know of a value besides its weight.
pub(crate) trait Expiring {
    /// When the value stops being useful (seconds since the epoch): from then on it
    /// is evicted before any other, whatever its reference bit.
    fn end(&self) -> u64;
}

/// The smallest share of the budget worth a shard of its own: small budgets get
/// fewer shards, so that no shard sits empty while the others fill the budget
/// (a shard evicts only its own slots).
const MIN_SHARD_BYTES: u64 = 256 * 1024;

/// At most this many shards (and at least one).
const MAX_SHARDS: usize = 64;

/// Bytes of the index per bucket: the `u32` slot number and its control byte.
const INDEX_BUCKET_BYTES: usize = std::mem::size_of::<u32>() + 1;

struct Slot<V> {
    /// The key, folded to 32 bits (see the module's docs).
    key: u32,
    /// The value's weight, and [`REFERENCED`].
    state: AtomicU32,
    value: V,
}

/// Bytes of one slot holding a `V` (tests of the layout).
#[cfg(test)]
pub(crate) const fn slot_size<V>() -> usize {
    std::mem::size_of::<Slot<V>>()
}

/// The reference bit of a slot's state; the other bits are its weight.
const REFERENCED: u32 = 1 << 31;

impl<V> Slot<V> {
    fn weight(&mut self) -> u64 {
        u64::from(*self.state.get_mut() & !REFERENCED)
    }

    /// Reads and clears the reference bit.
    fn take_reference(&mut self) -> bool {
        let state = self.state.get_mut();
        let referenced = *state & REFERENCED != 0;
        *state &= !REFERENCED;
        referenced
    }
}

/// The key as slots and the index keep it.
#[allow(clippy::cast_possible_truncation)] // on purpose: both halves, mixed
fn fold(key: u64) -> u32 {
    (key as u32) ^ ((key >> 32) as u32)
}

/// A slot's position as the index keeps it (`insert` never lets a shard hold more
/// than `u32::MAX` slots).
fn number(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// The index's hash of a folded key: hashbrown reads its low bits (bucket) and its
/// top seven (tag), so the 32 bits are spread over all 64.
fn index_hash(key: u32) -> u64 {
    u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct Shard<V> {
    /// Slot numbers, hashed by their slot's key (already a hash).
    index: HashTable<u32>,
    slots: Vec<Slot<V>>,
    /// The clock hand: the next slot to look at for an eviction.
    hand: usize,
    /// The values' weights, summed.
    weights: u64,
}

pub(crate) struct Table<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    budget: u64,
    /// Every shard's [`Shard::bytes`], summed.
    used: AtomicU64,
}

impl<V: Expiring> Table<V> {
    /// A table of at most `max_bytes` of heap, bookkeeping included.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, usize::from);
        let wanted = (parallelism * 4).next_power_of_two().min(MAX_SHARDS);
        let affordable = usize::try_from(max_bytes / MIN_SHARD_BYTES).unwrap_or(usize::MAX).max(1);
        // A power of two, so that a shard is picked with a mask.
        let count = wanted.min(1 << affordable.ilog2());
        let shards = (0..count)
            .map(|_| RwLock::new(Shard { index: HashTable::new(), slots: Vec::new(), hand: 0, weights: 0 }))
            .collect();
        Self { shards, budget: max_bytes, used: AtomicU64::new(0) }
    }

    fn shard(&self, key: u64) -> &RwLock<Shard<V>> {
        let mask = self.shards.len() as u64 - 1;
        &self.shards[usize::try_from((key >> 32) & mask).unwrap_or(0)]
    }

    /// `found` applied to the value under `key`; a `Some` marks the entry as used.
    #[inline]
    pub(crate) fn get_with<R>(&self, key: u64, found: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let shard = read(self.shard(key));
        let slot = shard.slot(fold(key))?;
        let answer = found(&slot.value)?;
        if slot.state.load(Ordering::Relaxed) & REFERENCED == 0 {
            slot.state.fetch_or(REFERENCED, Ordering::Relaxed);
        }
        Some(answer)
    }

    /// Stores `value` under `key` (replacing what was there), evicting as needed;
    /// a value that could never fit is not stored. `cutoff`: values that end
    /// before it are evicted first.
    pub(crate) fn insert(&self, key: u64, value: V, weight: u32, cutoff: u64) {
        let mut shard = write(self.shard(key));
        let before = shard.bytes();
        if u64::from(weight) + Shard::<V>::bookkeeping(Shard::<V>::grown(0), 1) > self.budget {
            // Too big even for an empty table: evicting others would not help (and
            // an older value under the key is stale now).
            if let Some(at) = shard.position(fold(key)) {
                shard.remove_at(at);
            }
            self.account(before, shard.bytes());
            return;
        }
        // The other shards' bytes: this shard must keep within what they leave.
        let others = self.used.load(Ordering::Relaxed).saturating_sub(before);
        shard.insert(fold(key), value, weight, cutoff, self.budget.saturating_sub(others));
        self.account(before, shard.bytes());
    }

    fn account(&self, before: u64, after: u64) {
        if after >= before {
            self.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Removes every value `doomed` picks.
    pub(crate) fn remove_where(&self, mut doomed: impl FnMut(&V) -> bool) {
        for shard in &*self.shards {
            let mut shard = write(shard);
            let before = shard.bytes();
            let mut at = 0;
            while at < shard.slots.len() {
                if doomed(&shard.slots[at].value) {
                    shard.remove_at(at);
                } else {
                    at += 1;
                }
            }
            self.account(before, shard.bytes());
        }
    }

    /// Visits every value.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&V)) {
        for shard in &*self.shards {
            read(shard).slots.iter().for_each(|slot| visit(&slot.value));
        }
    }

    /// `(entries, heap bytes counted against the budget)`.
    #[cfg(any(test, feature = "__bench"))]
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(entries, bytes), shard| {
            let shard = read(shard);
            (entries + shard.slots.len() as u64, bytes + shard.bytes())
        })
    }
}

impl<V: Expiring> Shard<V> {
    fn position(&self, key: u32) -> Option<usize> {
        let slots = &self.slots;
        let found =
            self.index.find(index_hash(key), |&at| slots.get(at as usize).is_some_and(|slot| slot.key == key))?;
        Some(*found as usize)
    }

    fn slot(&self, key: u32) -> Option<&Slot<V>> {
        self.position(key).and_then(|at| self.slots.get(at))
    }

    /// Heap held: the values' weights and the bookkeeping at its capacities.
    fn bytes(&self) -> u64 {
        self.weights + Self::bookkeeping(self.slots.capacity(), self.index.capacity())
    }

    fn bookkeeping(slots: usize, index: usize) -> u64 {
        // hashbrown keeps at most 7/8 of its buckets full.
        let buckets = index.saturating_mul(8) / 7;
        (slots * std::mem::size_of::<Slot<V>>() + buckets * INDEX_BUCKET_BYTES) as u64
    }

    /// The slots' capacity after the next growth: an eighth more, so that the slack
    /// stays small (a doubling would leave up to half the slots' memory unused).
    fn grown(capacity: usize) -> usize {
        capacity + (capacity / 8).max(8)
    }

    /// Stores `value` within `budget` (what the other shards leave), evicting from
    /// this shard as needed.
    fn insert(&mut self, key: u32, value: V, weight: u32, cutoff: u64, budget: u64) {
        let weight = weight.min(REFERENCED - 1);
        if let Some(at) = self.position(key) {
            let slot = &mut self.slots[at];
            self.weights = self.weights - slot.weight() + u64::from(weight);
            slot.value = value;
            *slot.state.get_mut() = weight;
            while self.bytes() > budget && self.slots.len() > 1 && self.evict_one(cutoff) {}
            return;
        }
        // Make room first, counting the growth this insertion would cause.
        loop {
            let slots = if self.slots.len() < self.slots.capacity() {
                self.slots.capacity()
            } else {
                Self::grown(self.slots.capacity())
            };
            let index = if self.index.len() < self.index.capacity() {
                self.index.capacity()
            } else {
                (self.index.capacity() + 1) * 2
            };
            if self.weights + u64::from(weight) + Self::bookkeeping(slots, index) <= budget {
                break;
            }
            if !self.evict_one(cutoff) {
                // Empty, and still too big: this value never fits.
                return;
            }
        }
        if self.slots.len() == self.slots.capacity() {
            self.slots.reserve_exact(Self::grown(self.slots.capacity()) - self.slots.len());
        }
        let Ok(at) = u32::try_from(self.slots.len()) else { return };
        self.slots.push(Slot { key, state: AtomicU32::new(weight), value });
        self.weights += u64::from(weight);
        let Self { index, slots, .. } = self;
        index.insert_unique(index_hash(key), at, |&at| slots.get(at as usize).map_or(0, |slot| index_hash(slot.key)));
    }

    /// Evicts one slot (see the module's "How it works"); `false` when empty.
    fn evict_one(&mut self, cutoff: u64) -> bool {
        // Two turns at most: the first clears every reference bit it passes.
        for _ in 0..=2 * self.slots.len() {
            if self.slots.is_empty() {
                return false;
            }
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            let referenced = slot.take_reference();
            if !referenced || slot.value.end() < cutoff {
                // The last slot (often the newest) moves into the hand's place: the
                // hand steps past it, so that it gets a whole turn like any other.
                self.remove_at(self.hand);
                self.hand += 1;
                return true;
            }
            self.hand += 1;
        }
        false
    }

    fn remove_at(&mut self, at: usize) {
        let Some(slot) = self.slots.get(at) else { return };
        let (key, own) = (slot.key, number(at));
        if let Ok(entry) = self.index.find_entry(index_hash(key), |&n| n == own) {
            entry.remove();
        }
        let mut removed = self.slots.swap_remove(at);
        self.weights -= removed.weight();
        // The former last slot now lives at `at`: its index entry follows it.
        if let Some(moved) = self.slots.get(at) {
            let last = number(self.slots.len());
            if let Some(number) = self.index.find_mut(index_hash(moved.key), |&n| n == last) {
                *number = self::number(at);
            }
        }
    }
}

/// The locks are never held across code that can panic, but a poisoned lock still
/// holds a consistent table: go on with it rather than fail every request.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Value {
        id: u64,
        end: u64,
    }

    impl Expiring for Value {
        fn end(&self) -> u64 {
            self.end
        }
    }

    const FOREVER: u64 = u64::MAX;

    fn value(id: u64) -> Value {
        Value { id, end: FOREVER }
    }

    fn get(table: &Table<Value>, key: u64) -> Option<Value> {
        table.get_with(key, |v| Some(v.clone()))
    }

    /// Keys spread like real ones (foldhash output), deterministic here.
    fn key(n: u64) -> u64 {
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0x5555_5555
    }

    #[test]
    fn what_is_stored_is_found_and_nothing_else() {
        let table = Table::new(64 * 1024 * 1024);
        for n in 0..10_000 {
            table.insert(key(n), value(n), 100, 0);
        }
        for n in 0..10_000 {
            assert_eq!(get(&table, key(n)).map(|v| v.id), Some(n));
        }
        assert_eq!(get(&table, key(10_000)), None);
        assert_eq!(table.stats().0, 10_000);
    }

    #[test]
    fn replacing_a_value_keeps_one_entry_and_its_new_weight() {
        let table = Table::new(MIN_SHARD_BYTES);
        table.insert(key(1), value(1), 100, 0);
        let before = table.stats().1;
        table.insert(key(1), value(2), 1100, 0);
        assert_eq!(table.stats(), (1, before + 1000));
        assert_eq!(get(&table, key(1)).map(|v| v.id), Some(2));
    }

    /// The budget bounds everything: values and bookkeeping, whatever is inserted.
    #[test]
    fn the_budget_is_never_exceeded_by_more_than_the_index_growth() {
        let budget = 4 * MIN_SHARD_BYTES;
        let table = Table::new(budget);
        for n in 0..200_000 {
            table.insert(key(n), value(n), 50 + (n % 300) as u32, 0);
            if n % 997 == 0 {
                let (entries, bytes) = table.stats();
                // hashbrown may double its index past the prediction by a few bytes
                // per entry; nothing else may overshoot.
                assert!(bytes <= budget + entries * 5, "{bytes} > {budget} with {entries} entries");
            }
        }
        let (entries, _) = table.stats();
        assert!(entries > 1_000, "a full table holds many entries, not {entries}");
    }

    /// A value bigger than a shard's share is refused, and evicts nothing.
    #[test]
    fn a_value_that_cannot_fit_is_not_stored() {
        let table = Table::new(MIN_SHARD_BYTES);
        table.insert(key(1), value(1), 10, 0);
        table.insert(key(2), value(2), u32::try_from(MIN_SHARD_BYTES).unwrap(), 0);
        assert_eq!(get(&table, key(2)), None);
        assert_eq!(get(&table, key(1)).map(|v| v.id), Some(1));
        // Under a key already held, the older value goes too.
        table.insert(key(1), value(3), u32::try_from(MIN_SHARD_BYTES).unwrap(), 0);
        assert_eq!(get(&table, key(1)), None);
        assert_eq!(table.stats().0, 0);
    }

    /// Fills a one-shard table almost to its budget; the count inserted.
    fn fill(table: &Table<Value>, weight: u32, end: impl Fn(u64) -> u64) -> u64 {
        let mut n = 0;
        while table.stats().1 + u64::from(weight) + 1000 < MIN_SHARD_BYTES {
            table.insert(key(n), Value { id: n, end: end(n) }, weight, 0);
            n += 1;
        }
        n
    }

    /// CLOCK: entries read since the hand last passed survive a sweep that evicts
    /// the others.
    #[test]
    fn used_entries_survive_and_unused_ones_go_first() {
        let (table, weight) = (Table::new(MIN_SHARD_BYTES), 1000);
        let filled = fill(&table, weight, |_| FOREVER);
        let hot: Vec<u64> = (0..filled).step_by(3).collect();
        for &h in &hot {
            assert!(get(&table, key(h)).is_some());
        }
        // Insert a tenth as many new entries: only cold ones may make room.
        for m in filled..filled + filled / 10 {
            table.insert(key(m), value(m), weight, 0);
        }
        for &h in &hot {
            assert!(get(&table, key(h)).is_some(), "hot entry {h} evicted");
        }
        let cold_left = (0..filled).filter(|m| m % 3 != 0 && get(&table, key(*m)).is_some()).count();
        assert!(cold_left * 3 < usize::try_from(filled * 2).unwrap(), "cold entries were evicted");
    }

    /// An entry past its end goes before a referenced one.
    #[test]
    fn ended_entries_are_evicted_first_even_when_used() {
        let (table, weight) = (Table::new(MIN_SHARD_BYTES), 1000);
        // Every fourth entry ended at time 10.
        let filled = fill(&table, weight, |n| if n % 4 == 0 { 10 } else { FOREVER });
        for m in 0..filled {
            assert!(get(&table, key(m)).is_some());
        }
        for m in filled..filled + filled / 8 {
            table.insert(key(m), value(m), weight, 100);
        }
        let live_kept = (0..filled).filter(|m| m % 4 != 0 && get(&table, key(*m)).is_some()).count();
        assert_eq!(live_kept, (0..filled).filter(|m| m % 4 != 0).count(), "only ended entries made room");
    }

    /// Removals move slots around: the index follows every move (compared against a
    /// model map through thousands of mixed operations).
    #[test]
    fn the_index_follows_every_removal() {
        let table = Table::new(MIN_SHARD_BYTES * 16);
        let mut model: HashMap<u64, u64> = HashMap::new();
        let mut state = 0x1234_5678_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000_u64 {
            let n = next() % 3_000;
            match next() % 4 {
                0 | 1 => {
                    table.insert(key(n), value(round), 64, 0);
                    model.insert(n, round);
                }
                2 => {
                    let doomed = next() % 7;
                    table.remove_where(|v| v.id % 7 == doomed);
                    model.retain(|_, id| *id % 7 != doomed);
                }
                _ => assert_eq!(get(&table, key(n)).map(|v| v.id), model.get(&n).copied(), "key {n}"),
            }
        }
        for (n, id) in &model {
            assert_eq!(get(&table, key(*n)).map(|v| v.id), Some(*id));
        }
        assert_eq!(table.stats().0, model.len() as u64, "nothing was evicted under this budget");
        let mut seen = 0;
        table.for_each(|_| seen += 1);
        assert_eq!(seen, model.len());
    }

    /// One budget for all shards: keys that all land in one shard may use it whole.
    #[test]
    fn one_shard_may_use_the_whole_budget() {
        let budget = 8 * MIN_SHARD_BYTES;
        let table: Table<Value> = Table::new(budget);
        assert!(table.shards.len() > 1);
        // The high word picks the shard: zero for every key here.
        for n in 0..50_000_u64 {
            table.insert(n, value(n), 100, 0);
        }
        let (entries, bytes) = table.stats();
        assert!(bytes <= budget + entries * 5 && bytes > budget * 9 / 10, "{bytes} of {budget}");
        assert!(entries * 100 > budget / 2, "one shard holds more than its share: {entries}");
    }

    /// Keys that agree on their folded 32 bits share a slot: the value found is the
    /// other key's (for the caller to refuse), and an insertion replaces it.
    #[test]
    fn keys_with_the_same_folded_bits_share_a_slot() {
        let table = Table::new(MIN_SHARD_BYTES);
        let a = key(7);
        let b = a ^ ((1 << 52) | (1 << 20));
        assert_eq!(fold(a), fold(b));
        table.insert(a, value(1), 10, 0);
        assert_eq!(get(&table, b).map(|v| v.id), Some(1), "found, for the caller to refuse");
        table.insert(b, value(2), 10, 0);
        assert_eq!(table.stats().0, 1);
        assert_eq!(get(&table, a).map(|v| v.id), Some(2));
    }

    /// Keys that share their low bits (one hashbrown bucket chain) stay apart.
    #[test]
    fn keys_with_equal_low_bits_stay_apart() {
        let table = Table::new(MIN_SHARD_BYTES);
        for n in 0..500_u64 {
            table.insert(n << 40, value(n), 10, 0);
        }
        for n in 0..500_u64 {
            assert_eq!(get(&table, n << 40).map(|v| v.id), Some(n));
        }
    }

    #[test]
    fn readers_and_writers_at_once() {
        let table = Table::new(8 * MIN_SHARD_BYTES);
        std::thread::scope(|scope| {
            for t in 0..4_u64 {
                let table = &table;
                scope.spawn(move || {
                    for n in 0..20_000_u64 {
                        let k = key(t * 1_000_000 + n % 2_000);
                        if n % 3 == 0 {
                            table.insert(k, value(t * 1_000_000 + n % 2_000), 200, 0);
                        } else if let Some(v) = get(table, k) {
                            assert_eq!(v.id, t * 1_000_000 + n % 2_000, "a key's value is its own");
                        }
                    }
                });
            }
        });
        let (entries, bytes) = table.stats();
        assert!(entries > 0 && bytes <= 8 * MIN_SHARD_BYTES + entries * 5);
    }
}
