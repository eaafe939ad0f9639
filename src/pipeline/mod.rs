//! The one drive contract every stage follows: [`Stage::push`] one input,
//! [`Stage::poll`] until `None`, [`Stage::finish`] at end of input (then poll again).
//!
//! ```
//! use strom::pipeline::{drain, Stage};
//! use strom::Error;
//!
//! /// Doubles numbers; a stand-in for a real stage.
//! struct Double(Vec<u32>);
//! impl Stage for Double {
//!     type In = u32;
//!     type Out = u32;
//!     fn push(&mut self, x: u32) -> Result<(), Error> { self.0.push(x * 2); Ok(()) }
//!     fn poll(&mut self) -> Option<Result<u32, Error>> { self.0.pop().map(Ok) }
//!     fn finish(&mut self) -> Result<(), Error> { Ok(()) }
//! }
//! let mut chain = Double(vec![]).then(Double(vec![]));
//! chain.push(3).unwrap();
//! assert_eq!(drain(&mut chain).unwrap(), vec![12]);
//! ```

use std::collections::VecDeque;

use crate::error::Result;

/// A push/poll/finish processing stage.
///
/// Contract: after each `push` the caller polls until `None` before pushing again;
/// after `finish` the caller polls until `None` and pushes no more. A stage never
/// blocks and never performs IO. An error from `poll` or `push` is for the item at
/// hand; stages document whether they can continue after one.
pub trait Stage {
    /// What the stage consumes.
    type In;
    /// What the stage produces.
    type Out;
    /// Accepts one input.
    fn push(&mut self, input: Self::In) -> Result<()>;
    /// The next ready output, or `None` when nothing is ready.
    fn poll(&mut self) -> Option<Result<Self::Out>>;
    /// End of input: makes buffered outputs ready.
    fn finish(&mut self) -> Result<()>;

    /// Chains `next` after this stage.
    fn then<B>(self, next: B) -> Chain<Self, B>
    where
        Self: Sized,
        B: Stage<In = Self::Out>,
    {
        Chain::new(self, next)
    }
}

/// Polls `stage` until `None`, collecting outputs; stops at the first error.
pub fn drain<S: Stage + ?Sized>(stage: &mut S) -> Result<Vec<S::Out>> {
    let mut out = Vec::new();
    while let Some(x) = stage.poll() {
        out.push(x?);
    }
    Ok(out)
}

/// Two stages in sequence, itself a [`Stage`].
#[derive(Debug)]
pub struct Chain<A: Stage, B: Stage<In = A::Out>> {
    a: A,
    b: B,
    ready: VecDeque<Result<B::Out>>,
}

impl<A: Stage, B: Stage<In = A::Out>> Chain<A, B> {
    /// `a` then `b`.
    pub fn new(a: A, b: B) -> Self {
        Chain {
            a,
            b,
            ready: VecDeque::new(),
        }
    }
    /// The first stage.
    pub fn first(&self) -> &A {
        &self.a
    }
    /// The second stage.
    pub fn second(&self) -> &B {
        &self.b
    }
    /// Both stages back.
    pub fn into_inner(self) -> (A, B) {
        (self.a, self.b)
    }

    fn pump(&mut self) -> Result<()> {
        while let Some(x) = self.a.poll() {
            self.b.push(x?)?;
            while let Some(y) = self.b.poll() {
                self.ready.push_back(y);
            }
        }
        Ok(())
    }
}

impl<A: Stage, B: Stage<In = A::Out>> Stage for Chain<A, B> {
    type In = A::In;
    type Out = B::Out;

    fn push(&mut self, input: A::In) -> Result<()> {
        self.a.push(input)?;
        self.pump()
    }
    fn poll(&mut self) -> Option<Result<B::Out>> {
        self.ready.pop_front()
    }
    fn finish(&mut self) -> Result<()> {
        self.a.finish()?;
        self.pump()?;
        self.b.finish()?;
        while let Some(y) = self.b.poll() {
            self.ready.push_back(y);
        }
        Ok(())
    }
}
