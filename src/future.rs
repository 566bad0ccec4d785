//! Response futures of [`SessionService`](crate::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService).
    ///
    /// Unboxed on the hot path (credential verified locally); boxed only when the
    /// key set had to be refreshed or the issuer asked first.
    ///
    /// # Panics
    ///
    /// When polled again after it completed (a contract violation by the caller, as
    /// for tower-http's futures).
    pub struct SessionFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[project_replace = KindReplace]
    enum Kind<F: Future> {
        Ready { #[pin] future: F },
        Resolving { future: BoxFuture<F::Output> },
        Done,
    }
}

impl<F: Future> SessionFuture<F> {
    pub(crate) fn ready(future: F) -> Self {
        Self { kind: Kind::Ready { future } }
    }
    pub(crate) fn resolving(future: BoxFuture<F::Output>) -> Self {
        Self { kind: Kind::Resolving { future } }
    }
}

impl<F: Future> Future for SessionFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let output = match kind.as_mut().project() {
            KindProj::Ready { future } => ready!(future.poll(cx)),
            KindProj::Resolving { future } => ready!(future.as_mut().poll(cx)),
            KindProj::Done => panic!("SessionFuture polled after completion"),
        };
        // Drops the finished future now, and makes a further poll a clear panic.
        kind.project_replace(Kind::Done);
        Poll::Ready(output)
    }
}

impl<F: Future> std::fmt::Debug for SessionFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "SessionFuture polled after completion")]
    fn polled_after_completion_panics() {
        let mut future = std::pin::pin!(SessionFuture::ready(std::future::ready(7)));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(7));
        let _ = future.as_mut().poll(&mut cx);
    }
}
