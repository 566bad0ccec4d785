//! [`SessionService`]: authenticates each request, then calls the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::future::SessionFuture;
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
    /// The inner service.
    ///
    /// ```no_run
    /// use tower::{service_fn, Layer};
    /// use tower_stepup::{SessionLayer, StytchProject};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
    /// let layer = SessionLayer::stytch(&project).build().await?;
    /// let inner = service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// let mut service = layer.layer(inner);
    /// let _: &_ = service.get_ref();
    /// let _: &mut _ = service.get_mut();
    /// let _inner = service.into_inner();
    /// # Ok(()) }
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The inner service, without the layer.
    pub fn into_inner(self) -> S {
        self.inner
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
    type Future = SessionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (source, resolution) = self.state.locate(request.headers());
        let extensions = request.extensions_mut();
        extensions.insert(LayerHandle { layer: self.state.clone(), source });
        if let Resolution::Done(state) = resolution {
            extensions.insert(state);
            return SessionFuture::ready(self.inner.call(request));
        }
        // The inner service was made ready by `poll_ready`: take that one into the
        // future and leave a clone behind (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        SessionFuture::resolving(Box::pin(async move {
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
