//! A push: host checks (reference grammar, containment, tag), then the
//! flavor's decision, then (unless a dry run) the engine's push with the
//! component's credentials. Progress is a stream the caller consumes as it
//! happens; its last item is the outcome.
//!
//! A check is the first half of a push, the same code: what it answers
//! ([`CheckReport`]) is what the push goes on from, and
//! [`CheckReport::into_push`] turns it into the push's report or its
//! denial, here and in the CLI talking to a server, so a denial reads the
//! same either way.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;

use super::components::stored_uri;
use super::lookups::ComponentLookup;
use super::{
    AppError, CheckReport, ImageInfo, ImageSeen, PushProgress, PushReport, PushRequest, TenantApp,
    parse_reference,
};
use flavorbox_grammar::{ImageFacts, Reference, RegistryUri};
use flavorbox_net::credentials::Credentials;
use flavorbox_sandbox::flavor::{LogLine, PushDecision};
use flavorbox_sandbox::{LoadedFlavor, RepositoryLookup};
use flavorbox_store::{AuditEntry, ComponentRecord};

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

/// Where the image to push comes from.
#[derive(Debug, Clone)]
pub enum PushSource {
    /// Already in the Docker engine under the target name (the local CLI).
    Engine,
    /// An image archive on local disk (`docker save` or an OCI layout),
    /// pushed over the registry's API with no engine (the server).
    Archive {
        /// The tarball.
        path: std::path::PathBuf,
    },
}

/// The checked target of a push.
struct Target {
    reference: Reference,
    record: ComponentRecord,
    uri: RegistryUri,
}

/// The first half of a push, and all of a check: the host's checks passed
/// and the flavor answered.
struct Decided {
    target: Target,
    flavor: Arc<LoadedFlavor>,
    credentials: Option<Credentials>,
    report: CheckReport,
}

impl<'a> TenantApp<'a> {
    /// Pushes an image to a component's registry; see the module docs.
    pub fn push(&'a self, request: PushRequest) -> BoxStream<'a, PushUpdate> {
        self.push_from(request, PushSource::Engine)
    }

    /// Pushes an image from `source`; see the module docs.
    pub fn push_from(
        &'a self,
        request: PushRequest,
        source: PushSource,
    ) -> BoxStream<'a, PushUpdate> {
        let (tx, rx) = mpsc::unbounded_channel();
        let work = async move {
            let result = self.run_push(&request, &source, &tx).await;
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

    /// The host's checks and the flavor's decision, without pushing: what
    /// a push would do. A denial is an answer here, not an error.
    ///
    /// A check names the image alone: a flavor that asks to see the image
    /// (`image-info`) is called with it absent, and the report says so.
    pub async fn check(&self, component: &str, image: &str) -> Result<CheckReport, AppError> {
        Ok(self
            .decide_push(component, image, None, "check")
            .await?
            .report)
    }

    /// [`decide`](Self::decide_unrecorded)s and records the decision in
    /// the audit trail as `action`: the flavor's verdict, or the host's
    /// refusal before it. Only an allowed check waits in the batch.
    async fn decide_push(
        &self,
        component: &str,
        image: &str,
        source: Option<(&PushSource, bool)>,
        action: &str,
    ) -> Result<Decided, AppError> {
        let decided = self.decide_unrecorded(component, image, source).await;
        let entry = match &decided {
            Ok(d) => AuditEntry {
                action: action.to_string(),
                verdict: if d.report.allowed {
                    "allowed"
                } else {
                    "denied"
                }
                .to_string(),
                image: Some(d.report.image.reference()),
                component: Some(component.to_string()),
                flavor: Some(d.flavor.name().to_string()),
                flavor_sha256: Some(d.flavor.sha256().to_string()),
                reason: d.report.reason.clone(),
                ..AuditEntry::default()
            },
            Err(e) => AuditEntry {
                action: action.to_string(),
                verdict: "refused".to_string(),
                image: Some(image.to_string()),
                component: Some(component.to_string()),
                reason: Some(e.to_string()),
                ..AuditEntry::default()
            },
        };
        let batch = action == "check" && decided.as_ref().is_ok_and(|d| d.report.allowed);
        match decided {
            Ok(d) => {
                self.record(entry, batch).await?;
                Ok(d)
            }
            // A tenant held back (its CPU budget, concurrency, an overloaded
            // server) was not decided on: no row, so a flood of refusals
            // costs no writes.
            Err(e @ (AppError::Quota { .. } | AppError::Busy { .. })) => Err(e),
            Err(e) => {
                // The refusal is the answer; a trail that cannot take it
                // is logged, not put in its place.
                if let Err(trail) = self.record(entry, false).await {
                    tracing::warn!("a refusal was not recorded in the audit trail: {trail}");
                }
                Err(e)
            }
        }
    }

    /// The first half of every push, and all of a check: the host's checks
    /// (before any flavor code runs), then what the host reads from the
    /// image at `source` (only for a flavor that asks, before its call and
    /// outside its deadline), then the flavor's `prepare-image-push`.
    async fn decide_unrecorded(
        &self,
        component: &str,
        image: &str,
        source: Option<(&PushSource, bool)>,
    ) -> Result<Decided, AppError> {
        let target = self.check_target(image, component).await?;
        let flavor = self.component_flavor(&target, component).await?;
        let credentials = self.credentials(target.record.secret.as_deref()).await?;
        let (info, seen) = match source {
            _ if !flavor.wants_image_info() => (None, ImageSeen::NotAsked),
            None => (None, ImageSeen::Absent),
            Some((source, dry_run)) => {
                match self.read_image(source, &target.reference, dry_run).await? {
                    Some(info) => (Some(info), ImageSeen::Given),
                    None => (None, ImageSeen::Absent),
                }
            }
        };
        let (decision, logs) = self
            .decide(&flavor, &target, credentials.clone(), info)
            .await?;
        let report = CheckReport::decided(&target.reference, decision, logs, seen);
        Ok(Decided {
            target,
            flavor,
            credentials,
            report,
        })
    }

    /// The host's checks of a push alone, no flavor call: the reference
    /// parses, the component exists, the image lies inside its registry and
    /// names a tag. The server runs them before it reads an upload.
    pub async fn check_push_target(
        &self,
        component: &str,
        image: &str,
    ) -> Result<ImageInfo, AppError> {
        let target = self.check_target(image, component).await?;
        Ok(ImageInfo::from(&target.reference))
    }

    /// The component's flavor, refused if it was replaced since the
    /// component's config was validated.
    async fn component_flavor(
        &self,
        target: &Target,
        component: &str,
    ) -> Result<Arc<LoadedFlavor>, AppError> {
        let flavor = self.flavor(&target.record.flavor).await?;
        if let Some(validated_by) = &target.record.flavor_sha256
            && validated_by != flavor.sha256()
        {
            return Err(AppError::FlavorReplaced {
                flavor: target.record.flavor.clone(),
                component: component.to_string(),
            });
        }
        Ok(flavor)
    }

    async fn run_push(
        &self,
        request: &PushRequest,
        source: &PushSource,
        progress: &Progress,
    ) -> Result<PushReport, AppError> {
        let Decided {
            target,
            flavor,
            credentials,
            report,
        } = self
            .decide_push(
                &request.component,
                &request.image,
                Some((source, request.dry_run)),
                if request.dry_run { "dry-run" } else { "push" },
            )
            .await?;
        // Reported before the push starts (and on a denial), so a warning
        // such as "create the repository first" is seen even when the push
        // then fails.
        let _ = progress.send(PushUpdate::Progress(report.progress(flavor.name())));
        let mut pushed = report.into_push(flavor.name(), request.dry_run)?;
        if request.dry_run {
            return Ok(pushed);
        }
        let outcome = self
            .push_approved(&target, source, credentials, progress)
            .await;
        let mut entry = AuditEntry {
            action: "push".to_string(),
            image: Some(target.reference.to_string()),
            component: Some(request.component.clone()),
            flavor: Some(flavor.name().to_string()),
            flavor_sha256: Some(flavor.sha256().to_string()),
            ..AuditEntry::default()
        };
        match &outcome {
            Ok(digest) => {
                entry.verdict = "pushed".to_string();
                entry.digest = Some(digest.clone());
            }
            Err(e) => {
                entry.verdict = "failed".to_string();
                entry.reason = Some(e.to_string());
            }
        }
        // The push happened (or failed) either way: a trail that cannot
        // take its outcome is logged, not reported as the push's failure.
        if let Err(trail) = self.record(entry, false).await {
            tracing::warn!("a push's outcome was not recorded in the audit trail: {trail}");
        }
        pushed.digest = Some(outcome?);
        Ok(pushed)
    }

    /// The push itself, after the flavor approved: the manifest digest.
    async fn push_approved(
        &self,
        target: &Target,
        source: &PushSource,
        credentials: Option<Credentials>,
        progress: &Progress,
    ) -> Result<String, AppError> {
        let engine = progress.clone();
        let mut on_event = |event| {
            let _ = engine.send(PushUpdate::Progress(PushProgress::Engine { event }));
        };
        let outcome = match source {
            PushSource::Engine => {
                // The engine resolves the registry itself: check the
                // destination again right before handing it over.
                self.check_destination(&target.uri).await?;
                let docker = self.app.docker().await?;
                flavorbox_net::push::push_image(
                    docker,
                    &target.reference,
                    credentials.as_ref(),
                    &mut on_event,
                )
                .await?
            }
            PushSource::Archive { path } => {
                // Straight to the registry through the egress-checked
                // client: no engine, every connection and upload location
                // under the policy.
                flavorbox_net::push::distribution::push_archive(
                    &self.registry_api,
                    &target.uri,
                    path,
                    &target.reference,
                    credentials.as_ref(),
                    self.app.config.archive_limits(),
                    &mut on_event,
                )
                .await?
            }
        };
        Ok(outcome.digest)
    }

    /// The host's checks, before any flavor code runs: the reference
    /// parses, lies inside the component's registry, and names a tag.
    async fn check_target(&self, image: &str, component: &str) -> Result<Target, AppError> {
        let reference = parse_reference(image)?;
        let record = self
            .store
            .get_component_cached(component)
            .await?
            .ok_or_else(|| AppError::UnknownComponent(component.to_string()))?;
        let uri = stored_uri(&record)?;
        // The operator may have narrowed the tenant's allowlist since the
        // component was registered: refused before any flavor code runs.
        self.registry_api
            .check_namespace(&uri, uri.path())
            .map_err(|e| AppError::EgressRefused {
                uri: uri.to_string(),
                reason: e.to_string(),
            })?;
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

    /// What the host reads from the image at `source` for a flavor that
    /// asks (`image-info`): from the engine on the CLI, from the uploaded
    /// archive on a server, measured there. `None` when there is no image
    /// to read: a dry run of an image the engine does not have, or with no
    /// engine to ask (a real push then fails at the engine, as it would).
    async fn read_image(
        &self,
        source: &PushSource,
        image: &Reference,
        dry_run: bool,
    ) -> Result<Option<ImageFacts>, AppError> {
        let now = unix_now();
        match source {
            PushSource::Engine => {
                let docker = match self.app.docker().await {
                    Ok(docker) => docker,
                    Err(_) if dry_run => return Ok(None),
                    Err(e) => return Err(e),
                };
                Ok(
                    flavorbox_net::image_info::engine_facts(docker, &image.to_string(), now)
                        .await?,
                )
            }
            PushSource::Archive { path } => {
                let limits = self.app.config.archive_limits();
                let facts =
                    flavorbox_net::image_info::archive_facts_async(path, &limits, now).await?;
                Ok(Some(facts))
            }
        }
    }

    /// The flavor's `prepare-image-push`: its decision and log lines.
    async fn decide(
        &self,
        flavor: &Arc<LoadedFlavor>,
        target: &Target,
        credentials: Option<Credentials>,
        info: Option<ImageFacts>,
    ) -> Result<(PushDecision, Vec<LogLine>), AppError> {
        // Whether the flavor gets to use it is the sandbox's `Grants` to decide.
        let lookup: Arc<dyn RepositoryLookup> = Arc::new(ComponentLookup {
            api: self.registry_api.clone(),
            uri: target.uri.clone(),
            credentials,
        });
        let ctx = self.call_context(Some(lookup));
        let loaded = flavor.clone();
        let image = target.reference.clone();
        let config = target.record.config_json.clone();
        let outcome = self
            .sandbox_call(move |sandbox| {
                sandbox.prepare_image_push(&loaded, &ctx, &config, &image, info.as_ref())
            })
            .await??;
        Ok((outcome.value, outcome.logs))
    }
}

/// The host's clock, in Unix seconds: what an image's age is measured against.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl CheckReport {
    /// The report of a decision on the push of `image`.
    fn decided(
        image: &Reference,
        decision: PushDecision,
        logs: Vec<LogLine>,
        image_info: ImageSeen,
    ) -> CheckReport {
        let image = ImageInfo::from(image);
        match decision {
            PushDecision::Approve { warnings } => CheckReport {
                allowed: true,
                warnings,
                reason: None,
                image,
                logs,
                image_info,
            },
            PushDecision::Deny { reason } => CheckReport {
                allowed: false,
                warnings: Vec::new(),
                reason: Some(reason),
                image,
                logs,
                image_info,
            },
        }
    }

    /// What a push reports of the decision of `flavor`, before it goes on
    /// (and on a denial): the flavor's log lines and warnings.
    pub fn progress(&self, flavor: &str) -> PushProgress {
        PushProgress::Flavor {
            flavor: flavor.to_string(),
            logs: self.logs.clone(),
            warnings: self.warnings.clone(),
        }
    }

    /// The check as the first half of a push to a component of `flavor`:
    /// the push's report so far (no digest yet), or the push's denial when
    /// the flavor denied it. The one wording of a denial, for a push run
    /// here and for the CLI reading a server's check.
    pub fn into_push(self, flavor: &str, dry_run: bool) -> Result<PushReport, AppError> {
        let image = self.image.reference();
        if !self.allowed {
            return Err(AppError::Denied {
                flavor: flavor.to_string(),
                image,
                reason: self.reason.unwrap_or_default(),
            });
        }
        Ok(PushReport {
            image,
            digest: None,
            warnings: self.warnings,
            dry_run,
            image_info: self.image_info,
        })
    }
}

impl ImageInfo {
    /// The reference as text, `name[:tag][@digest]`: what the host's parse
    /// prints (`Reference`'s `Display`).
    pub fn reference(&self) -> String {
        let mut text = self.name.clone();
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_reads_as_the_hosts_parse_prints_it() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for text in [
            "ubuntu".to_string(),
            "localhost:5000/team/app:1".to_string(),
            format!("registry.io/app@{digest}"),
            format!("registry.io/app:1@{digest}"),
        ] {
            let parsed = Reference::parse(&text).expect(&text);
            assert_eq!(ImageInfo::from(&parsed).reference(), parsed.to_string());
            let tagged = parsed.with_default_tag();
            assert_eq!(ImageInfo::from(&tagged).reference(), tagged.to_string());
        }
    }

    #[test]
    fn a_denied_check_is_the_pushs_denial_and_an_approved_one_its_report() {
        let image = Reference::parse("localhost:5000/team/app")
            .expect("valid")
            .with_default_tag();
        let denied = CheckReport::decided(
            &image,
            PushDecision::Deny {
                reason: "no pushes on Fridays".into(),
            },
            Vec::new(),
            ImageSeen::NotAsked,
        );
        let err = denied.into_push("strict", false).expect_err("denied");
        assert_eq!(
            err.to_string(),
            "flavor `strict` denied the push of `localhost:5000/team/app:latest`: no pushes on Fridays"
        );
        let approved = CheckReport::decided(
            &image,
            PushDecision::Approve {
                warnings: vec!["create the repository first".into()],
            },
            Vec::new(),
            ImageSeen::Given,
        );
        let report = approved.into_push("strict", true).expect("approved");
        assert_eq!(report.image, "localhost:5000/team/app:latest");
        assert_eq!(report.warnings, ["create the repository first"]);
        assert!(report.dry_run && report.digest.is_none());
        // What the flavor saw of the image reaches the push's report.
        assert_eq!(report.image_info, ImageSeen::Given);
    }
}
