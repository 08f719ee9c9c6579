"""Images (JPEG, PNG, WebP): auto-oriented thumbnails, each size its own task, and a JSON manifest."""

from __future__ import annotations

import json
import warnings
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from dropq.errors import InputError
from dropq.objects import ObjectRef
from dropq.settings import load_settings
from tasks.pipelines import pipeline
from tasks.pipelines.base import Job, ReadRange, Split

THUMBNAIL_SIZES = (128, 512)
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}
# Pillow refuses images above this many pixels: a guard against decompression bombs.
MAX_PIXELS = 64_000_000
EXIF_ORIENTATION = 0x0112


def _open(job: Job) -> Image.Image:
    """Open and fully decode the input, turning every decoder complaint into an InputError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            image = Image.open(job.source)
            if image.format not in ACCEPTED_FORMATS:
                raise InputError(f"{image.format} images are not supported; expected JPEG, PNG or WebP")
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InputError(f"image refused as a possible decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InputError("not an image Pillow can read (the bytes are not JPEG, PNG or WebP)") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"corrupt or truncated image: {exc}") from exc
    return image


def plan(ref: ObjectRef, read: ReadRange) -> list[dict[str, Any]]:
    """One part per thumbnail size: side by side from DROPQ_IMAGE_SPLIT_BYTES (8 MiB) on, one after another below."""
    parts = [{"size": size} for size in THUMBNAIL_SIZES]
    return parts if ref.size >= load_settings().image_split_bytes else [{"sizes": THUMBNAIL_SIZES}]


def render(job: Job, args: dict[str, Any]) -> dict[str, Any]:
    """Write thumb-<size>.{jpg,png} for the part's size (or sizes), oriented by EXIF; return them and what the manifest says."""
    original = _open(job)
    image_format = original.format
    orientation = original.getexif().get(EXIF_ORIENTATION, 1)
    image = ImageOps.exif_transpose(original)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    thumbnails = []
    for size in args["sizes"] if "sizes" in args else [args["size"]]:
        thumb = image.copy()
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
        if has_alpha:
            name, thumb, kind = f"thumb-{size}.png", thumb.convert("RGBA"), "PNG"
        else:
            name, thumb, kind = f"thumb-{size}.jpg", thumb.convert("RGB"), "JPEG"
        path = job.out_dir / name
        thumb.save(path, kind, **({"quality": 85, "optimize": True} if kind == "JPEG" else {"optimize": True}))
        thumbnails.append({"key": job.output_key(name), "width": thumb.width, "height": thumb.height, "bytes": path.stat().st_size})
    return {
        "thumbnails": thumbnails,
        "format": image_format,
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "exif_orientation": orientation,
    }


def manifest(job: Job, thumbnails: list[dict[str, Any]]) -> None:
    """Write manifest.json: the source and every thumbnail, from the parts' results."""
    first = thumbnails[0]
    record = {
        "source": job.source_summary(),
        **{field: first[field] for field in ("format", "width", "height", "mode", "exif_orientation")},
        "thumbnails": [t for part in thumbnails for t in part["thumbnails"]],
    }
    (job.out_dir / "manifest.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))


# A large image's thumbnail sizes in parallel (a group), the manifest the chord's callback; a small one in one task.
pipeline("images")(Split(plan=plan, part=render, combine=manifest))
