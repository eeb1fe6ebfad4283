"""How the ``recommendations`` app reads this shop's catalogue.

Named in ``settings.RECOMMENDATIONS["CATALOGUE_ADAPTER"]``. Only the category differs from
the app's defaults: events name categories by their code (the slug), not by a database id.
"""

from __future__ import annotations

from typing import Any

from recommendations.adapters import CatalogueAdapter


class ShopCatalogueAdapter(CatalogueAdapter):
    def category_id(self, item: Any) -> str:
        """The category code (``electronics.smartphone``), as in the imported REES46 events."""
        category = getattr(item, "category", None)
        return getattr(category, "slug", "") or ""
