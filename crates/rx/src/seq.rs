//! A fixed-capacity sequence decoded in place.
//!
//! [`InPlace`] wraps a `heapless` [`Vec`] or [`Deque`] and is used exactly like it
//! (it dereferences to it), and its encoding is the sequence's own. What it changes is
//! how serde decodes it into an existing value (`Deserialize::deserialize_in_place`,
//! which a restore through `serde_derive`'s `deserialize_in_place` feature calls for
//! every field): the sequence is emptied and each element is decoded and pushed in turn,
//! so that only one element is ever a temporary. Decoded by value, as `heapless` does
//! it, the whole sequence (kilobytes: a week of day profiles, a limiter's counters, a
//! fluid path's segments) is built aside on the stack and then moved, and a
//! microcontroller's stack holds a few kilobytes.
//!
//! A sequence longer than the capacity is refused, as `heapless` refuses it.

use core::fmt;
use core::ops::{Deref, DerefMut};

use heapless::{Deque, LenType, Vec};

/// A fixed-capacity sequence that can be emptied and pushed to.
pub trait Sequence {
    /// The element.
    type Item;
    /// The most elements it holds.
    const CAPACITY: usize;
    /// Removes every element.
    fn clear(&mut self);
    /// Appends `item` at the end; gives it back when full.
    ///
    /// # Errors
    /// The item, when the sequence is full.
    fn push_back(&mut self, item: Self::Item) -> Result<(), Self::Item>;
}

impl<T, const N: usize, L: LenType> Sequence for Vec<T, N, L> {
    type Item = T;
    const CAPACITY: usize = N;
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn push_back(&mut self, item: T) -> Result<(), T> {
        self.push(item)
    }
}

impl<T, const N: usize> Sequence for Deque<T, N> {
    type Item = T;
    const CAPACITY: usize = N;
    fn clear(&mut self) {
        Deque::clear(self);
    }
    fn push_back(&mut self, item: T) -> Result<(), T> {
        Deque::push_back(self, item)
    }
}

/// A `heapless` sequence decoded in place, element by element: see the [module
/// docs](self). Used as the sequence itself (`Deref`, `DerefMut`); printed as it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct InPlace<S>(pub S);

impl<S: fmt::Debug> fmt::Debug for InPlace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S> Deref for InPlace<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.0
    }
}

impl<S> DerefMut for InPlace<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.0
    }
}

impl<'a, S> IntoIterator for &'a InPlace<S>
where
    &'a S: IntoIterator,
{
    type Item = <&'a S as IntoIterator>::Item;
    type IntoIter = <&'a S as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

impl<'a, S> IntoIterator for &'a mut InPlace<S>
where
    &'a mut S: IntoIterator,
{
    type Item = <&'a mut S as IntoIterator>::Item;
    type IntoIter = <&'a mut S as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&mut self.0).into_iter()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use core::fmt;
    use core::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::{Serialize, Serializer};

    use super::{InPlace, Sequence};

    impl<S: Serialize> Serialize for InPlace<S> {
        fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
            self.0.serialize(serializer)
        }
    }

    impl<'de, S> Deserialize<'de> for InPlace<S>
    where
        S: Deserialize<'de> + Sequence,
        S::Item: Deserialize<'de>,
    {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            S::deserialize(deserializer).map(InPlace)
        }

        fn deserialize_in_place<D: Deserializer<'de>>(
            deserializer: D,
            place: &mut Self,
        ) -> Result<(), D::Error> {
            deserializer.deserialize_seq(Elements(&mut place.0, PhantomData))
        }
    }

    /// Decodes a sequence's elements one at a time into `S`.
    struct Elements<'a, 'de, S>(&'a mut S, PhantomData<&'de ()>);

    impl<'de, S> Visitor<'de> for Elements<'_, 'de, S>
    where
        S: Sequence,
        S::Item: Deserialize<'de>,
    {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of at most {} elements", S::CAPACITY)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.0.clear();
            let mut len: usize = 0;
            while let Some(item) = seq.next_element()? {
                len = len.saturating_add(1);
                if self.0.push_back(item).is_err() {
                    return Err(A::Error::invalid_length(len, &self));
                }
            }
            Ok(())
        }
    }
}
