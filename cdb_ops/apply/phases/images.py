"""Phase `images`: carry out the plan's image changes — present, pulled, built from `images/`, or (when a
pull fails: offline, rate limit, no registry) built from its fallback and said so."""

from __future__ import annotations

from cdb_ops.apply.context import PhaseContext
from cdb_ops.errors import BuildFailed, PullFailed
from cdb_ops.load.buildhash import dockerfile_of
from cdb_ops.load.desired import DesiredService
from cdb_ops.load.specs import BuildSpec, PhaseSpec
from cdb_ops.model.labels import LABEL_BUILD_HASH, LABEL_IMAGE_SERVICE, LABEL_IMAGE_SYSTEM


def _build(ctx: PhaseContext, svc: DesiredService, build: BuildSpec, tag: str, phase: str, why: str) -> None:
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
    ctx.obtained.add(tag)
    ctx.record(phase, "image", tag, "build", f"{why} — built {image.id[7:19]}", took(), svc.name)


def ensure_image(ctx: PhaseContext, svc: DesiredService, phase: str) -> bool:
    """Carry out the plan's image change for `svc` (once per run); True when it pulled or built."""
    if svc.name in ctx.have_image:
        return False
    choice = ctx.plan.images[svc.name]
    src = svc.image
    changed = choice.action != "ok"
    if choice.action == "ok":
        ctx.record(phase, "image", choice.ref, "ok", choice.reason, service=svc.name)
    elif choice.action == "build":
        build = src.build or src.fallback
        assert build is not None
        _build(ctx, svc, build, choice.ref, phase, choice.reason)
    else:
        try:
            with ctx.timed() as took:
                ctx.progress.step(phase, "image", src.ref, "pull", "pulling")
                ctx.engine.pull(src.ref)
            ctx.obtained.add(src.ref)
            ctx.record(phase, "image", src.ref, "pull", "pulled", took(), svc.name)
        except PullFailed as exc:
            if src.fallback is None:
                raise
            assert src.fallback.tag
            ctx.progress.note(
                f"{src.ref} cannot be pulled ({exc.message}); using the fallback build "
                f"{src.fallback.context} -> {src.fallback.tag}"
            )
            _build(ctx, svc, src.fallback, src.fallback.tag, phase, f"fallback: {src.ref} could not be pulled")
    ctx.have_image.add(svc.name)
    return changed


def obtain(ctx: PhaseContext, svc: DesiredService, phase: str) -> bool | None:
    """ensure_image, except that an *optional* service whose image cannot be had (no registry and no
    fallback, e.g. grafana/grafana offline) is skipped with the reason instead of failing the run.
    None: skipped; else whether an image was pulled or built."""
    if svc.name in ctx.skipped:
        return None
    try:
        return ensure_image(ctx, svc, phase)
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
        return None


def run(ctx: PhaseContext, phase: PhaseSpec) -> None:
    names = phase.services or list(ctx.desired.services)
    for name in names:
        svc = ctx.desired.services.get(name)
        if svc is not None:
            obtain(ctx, svc, phase.name)
