//! A push: host checks (reference grammar, containment, tag), then the
//! flavor's decision, then (unless a dry run) the engine's push with the
//! component's credentials. Progress is a stream the caller consumes as it
//! happens; its last item is the outcome.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;

use super::lookups::ComponentLookup;
use super::{
    AppError, PushProgress, PushReport, PushRequest, TenantApp, blocking, parse_reference,
};
use crate::credentials::Credentials;
use crate::flavor::PushDecision;
use crate::reference::{Reference, RegistryUri};
use crate::sandbox::{LoadedFlavor, RepositoryLookup};
use crate::store::ComponentRecord;

/// One item of a push's stream.
#[derive(Debug)]
pub enum PushUpdate {
    /// Something happened.
    Progress(PushProgress),
    /// The push ended; always the last item.
    Done(Result<PushReport, AppError>),
}

/// Where progress goes while the push runs.
type Progress = mpsc::UnboundedSender<PushUpdate>;

/// The checked target of a push.
struct Target {
    reference: Reference,
    record: ComponentRecord,
    uri: RegistryUri,
}

impl<'a> TenantApp<'a> {
    /// Pushes an image to a component's registry; see the module docs.
    pub fn push(&'a self, request: PushRequest) -> BoxStream<'a, PushUpdate> {
        let (tx, rx) = mpsc::unbounded_channel();
        let work = async move {
            let result = self.run_push(&request, &tx).await;
            let _ = tx.send(PushUpdate::Done(result));
        };
        let updates = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|u| (u, rx)) });
        // The work sends every update, the outcome last, then drops its
        // sender, which ends `updates`; it yields nothing itself.
        let work = stream::once(work).filter_map(|()| async { None });
        stream::select(updates, work).boxed()
    }

    /// Pushes and returns the outcome, handing each progress item to `on_progress`.
    pub async fn push_with(
        &self,
        request: PushRequest,
        mut on_progress: impl FnMut(PushProgress),
    ) -> Result<PushReport, AppError> {
        let mut updates = self.push(request);
        while let Some(update) = updates.next().await {
            match update {
                PushUpdate::Progress(p) => on_progress(p),
                PushUpdate::Done(result) => return result,
            }
        }
        Err(AppError::Internal(
            "the push ended without an outcome".into(),
        ))
    }

    async fn run_push(
        &self,
        request: &PushRequest,
        progress: &Progress,
    ) -> Result<PushReport, AppError> {
        let target = self
            .check_target(&request.image, &request.component)
            .await?;
        let flavor = self.flavor(&target.record.flavor).await?;
        if let Some(validated_by) = &target.record.flavor_sha256
            && validated_by != flavor.sha256()
        {
            return Err(AppError::FlavorReplaced {
                flavor: target.record.flavor.clone(),
                component: request.component.clone(),
            });
        }
        let credentials = self.credentials(target.record.secret.as_deref()).await?;
        let warnings = self
            .decide(&flavor, &target, credentials.clone(), progress)
            .await?;
        let mut report = PushReport {
            image: target.reference.to_string(),
            digest: None,
            warnings,
            dry_run: request.dry_run,
        };
        if request.dry_run {
            return Ok(report);
        }
        let docker = self.app.docker().await?;
        let engine = progress.clone();
        let outcome = crate::push::push_image(
            docker,
            &target.reference,
            credentials.as_ref(),
            &mut |event| {
                let _ = engine.send(PushUpdate::Progress(PushProgress::Engine { event }));
            },
        )
        .await?;
        report.digest = Some(outcome.digest);
        Ok(report)
    }

    /// The host's checks, before any flavor code runs: the reference
    /// parses, lies inside the component's registry, and names a tag.
    async fn check_target(&self, image: &str, component: &str) -> Result<Target, AppError> {
        let reference = parse_reference(image)?;
        let record = self
            .store
            .get_component(component)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(component.to_string()))?;
        let uri = RegistryUri::parse(&record.uri)
            .map_err(|e| AppError::Internal(format!("stored uri of `{component}`: {e}")))?;
        if !uri.contains(&reference) {
            return Err(AppError::OutsideRegistry {
                image: reference.to_string(),
                component: component.to_string(),
                uri: uri.to_string(),
            });
        }
        if reference.digest().is_some() {
            return Err(AppError::DigestPush(
                reference.to_string(),
                reference.name(),
            ));
        }
        Ok(Target {
            reference: reference.with_default_tag(),
            record,
            uri,
        })
    }

    /// The flavor's `prepare-image-push`; its warnings on approval. The
    /// decision is reported before the push starts (and on a denial), so a
    /// warning such as "create the repository first" is seen even when the
    /// push then fails.
    async fn decide(
        &self,
        flavor: &Arc<LoadedFlavor>,
        target: &Target,
        credentials: Option<Credentials>,
        progress: &Progress,
    ) -> Result<Vec<String>, AppError> {
        // Whether the flavor gets to use it is the sandbox's `Grants` to decide.
        let lookup: Arc<dyn RepositoryLookup> = Arc::new(ComponentLookup {
            api: self.app.registry_api.clone(),
            uri: target.uri.clone(),
            credentials,
        });
        let ctx = self.call_context(Some(lookup));
        let sandbox = self.app.sandbox.clone();
        let loaded = flavor.clone();
        let image = target.reference.clone();
        let config = target.record.config_json.clone();
        let outcome =
            blocking(move || sandbox.prepare_image_push(&loaded, &ctx, &config, &image)).await??;
        let _ = progress.send(PushUpdate::Progress(PushProgress::Flavor {
            flavor: flavor.name().to_string(),
            logs: outcome.logs,
            warnings: match &outcome.value {
                PushDecision::Approve { warnings } => warnings.clone(),
                PushDecision::Deny { .. } => Vec::new(),
            },
        }));
        match outcome.value {
            PushDecision::Approve { warnings } => Ok(warnings),
            PushDecision::Deny { reason } => Err(AppError::Denied {
                flavor: flavor.name().to_string(),
                image: target.reference.to_string(),
                reason,
            }),
        }
    }
}
