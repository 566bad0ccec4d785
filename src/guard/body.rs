//! [`GuardBody`]: the response body of a [`GuardService`](crate::GuardService).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`GuardService`](crate::GuardService): the route's own body
    /// when the request was let through, or the bytes of the challenge when it was
    /// refused. A [`Body`] whenever the route's body is one whose data can be made
    /// from [`Bytes`] (axum's, hyper's, tower-http's and `http-body-util`'s bodies),
    /// so the route's body type need not be constructible from bytes.
    pub struct GuardBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Route { #[pin] body: B },
        Refusal { bytes: Option<Bytes> },
    }
}

impl<B> GuardBody<B> {
    /// The route's own body.
    pub(crate) fn route(body: B) -> Self {
        Self { kind: Kind::Route { body } }
    }
    /// A refusal's body; empty bytes are an empty body.
    pub(crate) fn refusal(bytes: Bytes) -> Self {
        Self { kind: Kind::Refusal { bytes: (!bytes.is_empty()).then_some(bytes) } }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Route { body } => body.poll_frame(cx),
            KindProj::Refusal { bytes } => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes.into())))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Route { body } => body.is_end_stream(),
            Kind::Refusal { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Route { body } => body.size_hint(),
            Kind::Refusal { bytes } => SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64)),
        }
    }
}

impl<B> std::fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Route { .. } => "route",
            Kind::Refusal { .. } => "refusal",
        };
        f.debug_struct("GuardBody").field("kind", &kind).finish()
    }
}
