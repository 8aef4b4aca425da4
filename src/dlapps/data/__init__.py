"""Named data domains as in-memory tensors: see :func:`load_domain` and :func:`list_domains`."""

from dlapps.data.domains import Domain, DomainInfo, list_domains, load_domain, to_shape

__all__ = ["Domain", "DomainInfo", "list_domains", "load_domain", "to_shape"]
