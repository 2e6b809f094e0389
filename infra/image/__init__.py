"""The worker image: a daemonless, reproducible build (buildah), a registry, and a Debian base.

``python -m infra image build|base|registry`` is the command line (:mod:`infra.image.cli`);
:mod:`infra.image.base` makes the debootstrap base image used where no registry can be
pulled from, :mod:`infra.image.registry` serves Debian's ``docker-registry`` on loopback,
and :mod:`infra.image.buildah` wraps buildah and skopeo.
"""
