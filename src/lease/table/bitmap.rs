//! A free bitmap with a hierarchical summary, for prefix pools. Bit = 1 means free. Level 0 has
//! one bit per prefix; each higher level has one bit per word of the level below, set while that
//! word has any free bit. Finding a free prefix reads one word per level (plus a short scan of
//! the top level), so it stays fast when the pool is 99 % full: a 16 M-prefix pool has three
//! levels of 256 Ki, 4 Ki and 64 words.

pub struct FreeBitmap {
    count: u64,
    free: u64,
    /// `levels[0]` is the leaf level; the last level has at most 64 words.
    levels: Vec<Vec<u64>>,
}

impl FreeBitmap {
    /// A bitmap of `count` entries, all free.
    pub fn new_all_free(count: u64) -> Self {
        assert!(count > 0);
        let mut levels = Vec::new();
        let mut n = count;
        loop {
            let words = n.div_ceil(64) as usize;
            let mut level = vec![u64::MAX; words];
            let rem = n % 64;
            if rem != 0 {
                level[words - 1] = (1u64 << rem) - 1;
            }
            levels.push(level);
            if words <= 64 {
                break;
            }
            n = words as u64;
        }
        FreeBitmap {
            count,
            free: count,
            levels,
        }
    }

    #[cfg(test)]
    pub fn free(&self) -> u64 {
        self.free
    }

    pub fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.len() * 8).sum()
    }

    pub fn is_free(&self, i: u64) -> bool {
        assert!(i < self.count);
        self.levels[0][(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub fn set_used(&mut self, i: u64) {
        assert!(self.is_free(i), "bitmap: {i} already used");
        self.free -= 1;
        let mut pos = i as usize;
        for l in 0..self.levels.len() {
            let w = pos / 64;
            self.levels[l][w] &= !(1 << (pos % 64));
            if self.levels[l][w] != 0 {
                break;
            }
            pos = w;
        }
    }

    pub fn set_free(&mut self, i: u64) {
        assert!(!self.is_free(i), "bitmap: {i} already free");
        self.free += 1;
        let mut pos = i as usize;
        for l in 0..self.levels.len() {
            let w = pos / 64;
            let was_empty = self.levels[l][w] == 0;
            self.levels[l][w] |= 1 << (pos % 64);
            if !was_empty {
                break;
            }
            pos = w;
        }
    }

    /// First set bit at `level` at or after `pos`, without wrapping.
    fn next_set(&self, level: usize, pos: usize) -> Option<usize> {
        let words = &self.levels[level];
        let w = pos / 64;
        if w >= words.len() {
            return None;
        }
        let masked = words[w] & (u64::MAX << (pos % 64));
        if masked != 0 {
            return Some(w * 64 + masked.trailing_zeros() as usize);
        }
        let next_word = if level + 1 == self.levels.len() {
            (w + 1..words.len()).find(|&x| words[x] != 0)?
        } else {
            self.next_set(level + 1, w + 1)?
        };
        debug_assert!(words[next_word] != 0, "summary bit set over an empty word");
        Some(next_word * 64 + words[next_word].trailing_zeros() as usize)
    }

    /// First free entry at or after `start`, wrapping around once.
    pub fn find_free(&self, start: u64) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let start = (start % self.count) as usize;
        let found = self.next_set(0, start).or_else(|| self.next_set(0, 0));
        found.map(|i| i as u64)
    }

    /// First aligned block of `size` (a power of two) free entries at or after `start`,
    /// wrapping once. Returns the first entry of the block.
    pub fn find_free_block(&self, start: u64, size: u64) -> Option<u64> {
        assert!(size.is_power_of_two());
        if size == 1 {
            return self.find_free(start);
        }
        if self.free < size || size > self.count {
            return None;
        }
        let blocks = self.count / size;
        let first = (start % self.count) / size;
        if size > 64 {
            return (first..blocks)
                .chain(0..first)
                .find(|&b| self.block_free(b * size, size))
                .map(|b| b * size);
        }
        // Visit only leaf words that have a free bit (found through the summary).
        let scan = |from: u64, to: u64| -> Option<u64> {
            let mut pos = from;
            while pos < to {
                let bit = self.next_set(0, pos as usize)? as u64;
                let word_start = bit / 64 * 64;
                let mut b = bit / size * size;
                while b < word_start + 64 && b + size <= to {
                    if self.block_free(b, size) {
                        return Some(b);
                    }
                    b += size;
                }
                pos = word_start + 64;
            }
            None
        };
        let end = blocks * size;
        scan(first * size, end).or_else(|| scan(0, (first * size).min(end)))
    }

    fn block_free(&self, first: u64, size: u64) -> bool {
        if size <= 64 {
            let w = self.levels[0][(first / 64) as usize];
            let mask = if size == 64 {
                u64::MAX
            } else {
                ((1u64 << size) - 1) << (first % 64)
            };
            w & mask == mask
        } else {
            let w0 = (first / 64) as usize;
            self.levels[0][w0..w0 + (size / 64) as usize]
                .iter()
                .all(|&w| w == u64::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_free_entries() {
        let n = 70_000u64;
        let mut b = FreeBitmap::new_all_free(n);
        for i in 0..n {
            b.set_used(i);
        }
        assert_eq!(b.find_free(123), None);
        b.set_free(69_999);
        b.set_free(5);
        assert_eq!(b.find_free(6), Some(69_999));
        assert_eq!(b.find_free(69_999), Some(69_999));
        b.set_used(69_999);
        assert_eq!(b.find_free(6), Some(5));
        assert_eq!(b.free(), 1);
    }

    #[test]
    fn finds_aligned_blocks() {
        let mut b = FreeBitmap::new_all_free(1024);
        b.set_used(3);
        assert_eq!(b.find_free_block(0, 4), Some(4));
        assert_eq!(b.find_free_block(0, 128), Some(128));
        assert_eq!(b.find_free_block(1000, 16), Some(992));
        b.set_used(1000);
        assert_eq!(b.find_free_block(1000, 16), Some(1008));
    }
}
