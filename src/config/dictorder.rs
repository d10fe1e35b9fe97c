//! Port of the iteration order of CPython 2.7's `dict` with `str` keys (Objects/
//! dictobject.c: `string_hash`, `lookdict_string`, `insertdict_clean`, `dictresize`).
//!
//! The 2012 parser keeps its layers in a plain dict, so the order in which it checks
//! parameters, reports the first error and hands layers to C++ is this hash order.
//! Keys are only ever inserted (never deleted), which keeps the emulation small.

const MIN_SIZE: usize = 8;
const PERTURB_SHIFT: u32 = 5;

/// `string_hash` of a 64-bit CPython 2.7 without hash randomisation.
pub fn str_hash(s: &str) -> i64 {
    let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
    if bytes.is_empty() {
        return 0;
    }
    let mut x: i64 = (bytes[0] as i64) << 7;
    for &b in &bytes {
        x = x.wrapping_mul(1_000_003) ^ b as i64;
    }
    x ^= bytes.len() as i64;
    if x == -1 {
        -2
    } else {
        x
    }
}

/// Probe from `hash` until `free(slot)`; the open-addressing walk of `lookdict_string`.
fn probe(hash: i64, mask: usize, mut free: impl FnMut(usize) -> bool) -> usize {
    let mut i = hash as u64 as usize;
    let mut perturb = hash as u64 as usize;
    let mut slot = i & mask;
    while !free(slot) {
        i = (i << 2)
            .wrapping_add(i)
            .wrapping_add(perturb)
            .wrapping_add(1);
        slot = i & mask;
        perturb >>= PERTURB_SHIFT;
    }
    slot
}

/// Indices into `keys` (distinct, in insertion order) in the order a CPython 2.7 dict
/// built by inserting them one by one iterates them.
pub fn iteration_order<S: AsRef<str>>(keys: &[S]) -> Vec<usize> {
    let hashes: Vec<i64> = keys.iter().map(|k| str_hash(k.as_ref())).collect();
    let mut table: Vec<Option<usize>> = vec![None; MIN_SIZE];
    let mut used = 0usize;
    for k in 0..keys.len() {
        let mask = table.len() - 1;
        let slot = probe(hashes[k], mask, |s| table[s].is_none());
        table[slot] = Some(k);
        used += 1;
        // PyDict_SetItem: resize when fill*3 >= (mask+1)*2, to 4*used (2*used past 50000).
        if used * 3 >= table.len() * 2 {
            let min_used = if used > 50_000 { 2 * used } else { 4 * used };
            let mut size = MIN_SIZE;
            while size <= min_used {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for entry in old.into_iter().flatten() {
                let slot = probe(hashes[entry], size - 1, |s| table[s].is_none());
                table[slot] = Some(entry);
            }
        }
    }
    table.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_cpython27() {
        // Values printed by Python 2.7.18 on x86_64: hash('a'), hash('conv1'), hash('').
        assert_eq!(str_hash("a"), 12416037344);
        assert_eq!(str_hash(""), 0);
        assert_eq!(str_hash("conv1"), 7943920258675201330);
    }

    #[test]
    fn order_matches_cpython27() {
        // list({'data':0,'labels':0,'conv1':0,'pool1':0,'fc10':0,'probs':0,'logprob':0})
        // built by inserting in that order, as printed by Python 2.7.18.
        let keys = [
            "data", "labels", "conv1", "pool1", "fc10", "probs", "logprob",
        ];
        let order: Vec<&str> = iteration_order(&keys)
            .into_iter()
            .map(|i| keys[i])
            .collect();
        assert_eq!(
            order,
            ["logprob", "labels", "conv1", "fc10", "pool1", "data", "probs"]
        );
    }
}
