//! Response futures of [`SessionService`](crate::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService).
    ///
    /// Unboxed on the hot path (credential verified locally); boxed only when the
    /// key set had to be refreshed first.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Ready { #[pin] future: F },
        Resolving { future: BoxFuture<F::Output> },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn ready(future: F) -> Self {
        Self { kind: Kind::Ready { future } }
    }
    pub(crate) fn resolving(future: BoxFuture<F::Output>) -> Self {
        Self { kind: Kind::Resolving { future } }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { future } => future.poll(cx),
            KindProj::Resolving { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
