"""The worker image: a daemonless, reproducible build (buildah), a registry, and a Debian base.

``python -m infra image build|base|registry`` is the command line (:mod:`infra.tools.image.cli`);
:mod:`infra.tools.image.rootfs` makes the debootstrap base image used where no registry can be
pulled from, :mod:`infra.tools.image.registry_server` serves Debian's ``docker-registry`` on loopback,
and :mod:`infra.tools.image.buildah` wraps buildah and skopeo.
"""
