"""Phase `images`: every selected service has its image — present, pulled, built from `images/`,
or (when a pull fails: offline, rate limit, no registry) built from its fallback and said so."""

from __future__ import annotations

from cdb_ops.desired import (
    LABEL_BUILD_HASH,
    LABEL_IMAGE_SERVICE,
    LABEL_IMAGE_SYSTEM,
    DesiredService,
    dockerfile_of,
)
from cdb_ops.engine import BuildFailed, ImageFacts, PullFailed
from cdb_ops.phases import PhaseContext
from cdb_ops.planner import choose_image
from cdb_ops.playbook import BuildSpec, PhaseSpec


def _build(ctx: PhaseContext, svc: DesiredService, build: BuildSpec, tag: str, phase: str, why: str) -> ImageFacts:
    # Not cdb.system: containers inherit their image's labels, and a container someone runs from our
    # image by hand must not look like part of the stack (cleanup would take it for ours).
    labels = {
        LABEL_IMAGE_SYSTEM: ctx.desired.system,
        LABEL_IMAGE_SERVICE: svc.name,
        LABEL_BUILD_HASH: svc.image.build_hash or "",
    }
    with ctx.timed() as took:
        ctx.progress.step(phase, "image", tag, "build", f"{why} — building {build.context}")
        image = ctx.engine.build(
            ctx.project.root / build.context,
            dockerfile_of(build),
            tag,
            labels,
            build.args,
            ctx.options.no_cache,
            on_line=lambda line: ctx.progress.line(svc.name, line),
        )
    ctx.record(phase, "image", tag, "build", f"{why} — built {image.id[7:19]}", took(), svc.name)
    return image


def ensure_image(ctx: PhaseContext, svc: DesiredService, phase: str) -> ImageFacts:
    """The image `svc` runs, obtaining it if needed. Cached per run."""
    if svc.name in ctx.images:
        return ctx.images[svc.name]
    choice = choose_image(ctx.engine, svc, ctx.options.no_cache)
    src = svc.image
    if choice.action == "ok" and choice.image is not None:
        image = choice.image
        ctx.record(phase, "image", choice.ref, "ok", choice.reason, service=svc.name)
    elif choice.action == "build":
        build = src.build or src.fallback
        assert build is not None
        image = _build(ctx, svc, build, choice.ref, phase, choice.reason)
    else:
        try:
            with ctx.timed() as took:
                ctx.progress.step(phase, "image", src.ref, "pull", "pulling")
                image = ctx.engine.pull(src.ref)
            ctx.record(phase, "image", src.ref, "pull", "pulled", took(), svc.name)
        except PullFailed as exc:
            if src.fallback is None:
                raise
            assert src.fallback.tag
            ctx.progress.note(
                f"{src.ref} cannot be pulled ({exc.message}); using the fallback build "
                f"{src.fallback.context} -> {src.fallback.tag}"
            )
            image = _build(ctx, svc, src.fallback, src.fallback.tag, phase, f"fallback: {src.ref} could not be pulled")
    ctx.images[svc.name] = image
    return image


def obtain(ctx: PhaseContext, svc: DesiredService, phase: str) -> bool:
    """ensure_image, except that an *optional* service whose image cannot be had (no registry and no
    fallback, e.g. grafana/grafana offline) is skipped with the reason instead of failing the run."""
    if svc.name in ctx.skipped:
        return False
    try:
        ensure_image(ctx, svc, phase)
        return True
    except (PullFailed, BuildFailed) as exc:
        if svc.spec.priority != "optional":
            raise
        ctx.skipped[svc.name] = exc.message
        ctx.record(
            phase,
            "image",
            svc.image.ref,
            "skip",
            f"optional service {svc.name} skipped: {exc.message}",
            service=svc.name,
        )
        return False


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    names = phase.services or list(ctx.desired.services)
    for name in names:
        svc = ctx.desired.services.get(name)
        if svc is not None:
            obtain(ctx, svc, phase.name)
