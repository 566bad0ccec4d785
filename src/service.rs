//! [`SessionService`]: authenticates each request, then calls the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::state::{LayerHandle, LayerState, Resolution};

/// The [`Service`] made by [`SessionLayer`](crate::SessionLayer).
///
/// Generic over any `http::Request<B>` service, so it works in plain tower stacks
/// as well as in axum.
pub struct SessionService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S: Clone> Clone for SessionService<S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), state: self.state.clone() }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, state: Arc<LayerState>) -> Self {
        Self { inner, state }
    }
}

impl<S, B, ResBody> Service<Request<B>> for SessionService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (source, resolution) = self.state.locate(request.headers());
        let extensions = request.extensions_mut();
        extensions.insert(LayerHandle { layer: self.state.clone(), source });
        if let Resolution::Done(state) = resolution {
            extensions.insert(state);
            return ResponseFuture::ready(self.inner.call(request));
        }
        // The inner service was made ready by `poll_ready`: take that one into the
        // future and leave a clone behind (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        ResponseFuture::resolving(Box::pin(async move {
            let (auth, update) = state.settle(resolution, source).await;
            request.extensions_mut().insert(auth);
            let mut response = inner.call(request).await?;
            if let Some(update) = update {
                state.write_cookies_unless_set(response.headers_mut(), &update);
            }
            Ok(response)
        }))
    }
}
