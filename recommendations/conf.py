"""The ``RECOMMENDATIONS`` settings dict: defaults, import strings, reload on change.

Every setting of the app lives in one dict in the host project's settings::

    RECOMMENDATIONS = {"RECORDER": "recommendations.capture.recorders.CeleryRecorder"}

Read it through ``app_settings.NAME``. Defaults are documented below, next to each key.
``override_settings(RECOMMENDATIONS=...)`` works in tests: the cache is cleared on change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Import string of the class that writes events (see capture/recorders.py):
    # DatabaseRecorder bulk-inserts a request's events once, after the response is sent;
    # CeleryRecorder enqueues them for a worker and falls back to the database when the
    # broker is unreachable.
    "RECORDER": "recommendations.capture.recorders.DatabaseRecorder",
    # Import string of the catalogue adapter (see adapters.py): how item ids, categories,
    # prices and order lines are read from the host shop's objects.
    "CATALOGUE_ADAPTER": "recommendations.adapters.CatalogueAdapter",
    # URL name -> what a successful GET of that page records, without touching its view:
    #   {"event": "view", "item_kwarg": "pk"}          item id from a URL kwarg
    #   {"event": "category_view", "category_kwarg": "slug"}
    #   {"event": "search", "query_param": "q"}        query from a GET parameter; the
    #     result count is read from the response's context (paginator or object_list)
    # "item_param" / "category_param" read ids from GET parameters instead.
    "TRACKED_URLS": {},
    # Import string of a Django signal -> the event it records ("cart" or "purchase").
    # Senders pass request=..., and item=/quantity=/price= (cart) or order= (purchase).
    "SIGNALS": {},
    # Honour the Do-Not-Track and Global Privacy Control headers (DNT: 1, Sec-GPC: 1).
    "HONOR_DNT": True,
    # Import string of a callable(request) -> bool; False means do not track this
    # request (for example: no analytics consent cookie). None tracks everyone.
    "CONSENT_CHECK": None,
    # Case-insensitive substrings of User-Agent headers that mark crawlers and bots.
    "CRAWLER_USER_AGENTS": (
        "bot",
        "crawl",
        "spider",
        "slurp",
        "facebookexternalhit",
        "bingpreview",
        "headless",
        "python-requests",
        "python-urllib",
        "curl/",
        "wget",
        "httpclient",
        "monitor",
        "lighthouse",
        "preview",
    ),
    # Record events for staff users too (off: staff browsing skews what shoppers want).
    "TRACK_STAFF": True,
    # Rows per INSERT statement when writing events in bulk.
    "BULK_BATCH_SIZE": 1000,
    # The Celery queue of the app's tasks (None: Celery's default), and a queue per kind of
    # task so that event batches never wait behind a training: "events" (record_events) and
    # "training" (retrain, estimate_off_policy); None: CELERY_QUEUE. Run one worker per queue,
    # and add "recommendations.queueing.route" to CELERY_TASK_ROUTES so beat's tasks follow
    # the same rule (README, *Deploying at scale*).
    "CELERY_QUEUE": None,
    "CELERY_QUEUES": {"events": None, "training": None},
    # Events of all requests of a process are written together by a background thread every
    # FLUSH_INTERVAL seconds, or as soon as FLUSH_SIZE are waiting; 0 writes each request's
    # events at the end of that request. At most MAX_PENDING_EVENTS wait in memory (while the
    # database is down, say); more are dropped, logged and counted.
    "FLUSH_INTERVAL": 0.5,
    "FLUSH_SIZE": 500,
    "MAX_PENDING_EVENTS": 100_000,
    # A Celery worker that cannot reach the database retries a batch this many times, waiting
    # 1, 2, 4 ... up to 60 s (with jitter) in between: about 8 to 15 minutes of outage at the
    # default. Events given up on, like those beyond MAX_PENDING_EVENTS, are counted in the
    # "dropped events" metric that the event admin shows.
    "EVENT_WRITE_RETRIES": 20,
    # Events sent by apps (the REST API) carry the app's clock: up to CLIENT_CLOCK_SKEW_SECONDS
    # in the future counts as now, further ahead is refused, and so is an event older than
    # CLIENT_MAX_EVENT_AGE_SECONDS (an app flushing its offline queue sends within a day), so
    # nobody can place events in a past period (a retrain's holdout) or a far future.
    "CLIENT_CLOCK_SKEW_SECONDS": 300,
    "CLIENT_MAX_EVENT_AGE_SECONDS": 86_400,
    # A click link on a recommendation counts for this many seconds after the page showed it
    # (older: the shopper still goes where it points, nothing is recorded); each rendered link
    # counts once, however often it is opened.
    "CLICK_MAX_AGE_SECONDS": 86_400,
    # Most events a single request may buffer; more are dropped (and logged) to protect
    # the page from a runaway loop.
    "MAX_EVENTS_PER_REQUEST": 200,
    # Velocity no person reaches (capture/vigilance.py): a shopper past one of these limits is
    # flagged; their events are stored and shape their own lists, but are left out of what
    # ranks items for others and of training until staff clear the flag (admin: Flagged
    # shoppers). None turns a limit off. Impressions are not counted.
    "VIGILANCE": {
        # Events one shopper (user, visitor or device) makes in a minute.
        "SHOPPER_EVENTS_PER_MINUTE": 60,
        # New shoppers one network (an IPv4 address, an IPv6 /64) brings in an hour; each
        # further one is flagged.
        "NETWORK_NEW_SHOPPERS_PER_HOUR": 20,
        # Events of all shoppers of one network in a minute.
        "NETWORK_EVENTS_PER_MINUTE": 600,
        # An anonymous visitor or device counts in others' lists (and in training) once its
        # first event is this many seconds old: a fresh cookie jar costs nothing, an hour-old
        # one an hour. Signed-in shoppers count at once (an account is the shop's to guard).
        "SETTLE_SECONDS": 3600,
    },
    # --- Learning (needs the "ml" extra) ---
    # Train models at all (a system check requires the ml extra when on).
    "TRAINING_ENABLED": True,
    # Model and training parameters, passed to recommendations.ml.training.NextItemRecommender:
    # embedding_dim, hidden_units (the article's (100, 100) is a valid setting), attention_units,
    # dropout, history_length, epochs, batch_size, learning_rate, patience,
    # validation_fraction, sampled_softmax_above (catalogue size), n_negatives, priors
    # (item-item priors by name: "cooccurrence", "transitions", "ease", "content"), n_neighbours and
    # prior_window (how the priors are read), mixture and gate_shift (repeat or explore),
    # category_match and category_scale, cold_item_count and freshness (new products),
    # max_cases (the newest training cases a fit learns from), random_state. Each is documented in NextItemRecommender.
    "MODEL": {},
    # Cleaning and normalization parameters, passed to recommendations.ml.preprocessing.Preprocessor.
    "PREPROCESSING": {},
    # Days of events a retrain reads, counted back from the newest event (None: all of them).
    "TRAINING_WINDOW_DAYS": 180,
    # The latest part of the window, by time, kept back to evaluate each new model against
    # the baselines; the model never trains on it.
    "HOLDOUT_FRACTION": 0.1,
    # Most of the holdout's events one shopper may give (never fewer than 20): the rest of
    # theirs are left out, so no single shopper decides whether a model is promoted.
    "HOLDOUT_MAX_SHOPPER_SHARE": 0.02,
    # Shoppers whose holdout events are scored (None: all): a stable sample, so a retrain's
    # evaluation costs the same on any log. 5,000 shoppers give about 20,000 cases, an MRR
    # known to about 0.004 (the candidate and the active version are scored on the same ones).
    "HOLDOUT_MAX_SHOPPERS": 5000,
    # Cut-off k of the holdout metrics.
    "EVALUATION_K": 20,
    # A new version is activated only if this holdout metric ("variant:metric", variants
    # "all" and "new") is at least the active version's plus PROMOTION_MARGIN, both scored
    # on the same cases: those of the new holdout after the last event the active version
    # was fitted on. With fewer than PROMOTION_MIN_CASES of them it is kept ready (the
    # admin says so; activate it by hand).
    "PROMOTION_METRIC": "new:mrr@20",
    "PROMOTION_MARGIN": 0.0,
    "PROMOTION_MIN_CASES": 30,
    # After evaluation, fit the version that ships again on every event, holdout included,
    # for the epochs evaluation chose: the newest items and days reach serving. Its holdout
    # figures stay those of the evaluated fit. False ships the evaluated fit itself.
    "REFIT_ON_ALL_EVENTS": True,
    # Versions kept (active, ready, retired and failed); older ones and their files are deleted.
    "KEEP_VERSIONS": 5,
    # Storage alias (settings.STORAGES) and folder where model files are written.
    "ARTIFACT_STORAGE": "default",
    "ARTIFACT_PREFIX": "recommendations/models",
    # Catalogues over this many items also save an item index (faiss IVF over 8-bit codes,
    # the "large" extra; ml/item_index.py): a request then scores the index's candidates and
    # the items its history touches, not every item (about 20 ms a request at a million
    # items). None: every version scores every item.
    "APPROXIMATE_ABOVE": 200_000,
    # Folder on each web server's own disk where a version's arrays are downloaded once, for
    # every worker of the machine to map the same file. None: a storage on the local disk is
    # mapped in place, a remote one (S3) is downloaded to a folder in the system's temporary
    # directory. Set it for a network disk (NFS) too. Not a RAM disk: the copy would cost memory.
    "LOCAL_MODEL_FOLDER": None,
    # A training whose heartbeat is older than this many seconds is considered dead: its
    # version is marked failed and the training lock released.
    "TRAINING_TIMEOUT": 3 * 3600,
    # --- Serving (recommendations.serving; services.py is the one read API) ---
    # Dotted "app_label.ModelName" of the shop's product model, used by the default
    # CatalogueAdapter.item_queryset() (override that method instead if you prefer).
    "ITEM_MODEL": None,
    # Seconds between two cheap checks (one cache read) for a newly activated version.
    "MODEL_CHECK_INTERVAL": 2.0,
    # Latest item events of a shopper that make their history at request time.
    "HISTORY_EVENTS": 30,
    # A returning shopper's list without a query (serving/history.py, serving/catalogue.py):
    # their stored history and purchases are kept in Django's cache this many seconds (new
    # events join it as they are recorded; 0: read the event table on every list). Only with
    # a cache all processes share (Redis, Memcached): with a per-process cache an erasure run
    # elsewhere could not reach it, so the table is read as before.
    "HISTORY_CACHE_SECONDS": 900,
    # Catalogue objects the lists show (and whether each may be recommended) are kept per
    # process this many seconds, at most ITEM_CACHE_SIZE of them; a saved or deleted item
    # reaches every process within a second (call recommendations.serving.catalogue.
    # catalogue_changed() after a bulk update, which sends no signals). 0: ask every time.
    "ITEM_CACHE_SECONDS": 60,
    "ITEM_CACHE_SIZE": 5000,
    # Items shown when a template tag or API call gives no limit, and the most it may ask.
    "DEFAULT_LIMIT": 8,
    "MAX_LIMIT": 50,
    # Diversity: at most this many items of one category in a "for you" or trending list
    # (None: no cap). Lists about one item (similar, bought together) follow their evidence.
    "MAX_PER_CATEGORY": 4,
    # Business rules. HIDE_ITEMS: item ids never recommended. PIN_ITEMS: scenario -> item
    # ids placed first when available ("for_you", "similar", "bought_together",
    # "trending"). BOOST: "item:<id>" or "category:<id>" -> factor; the item's place in
    # the list is divided by it (2.0: the 10th candidate competes as the 5th), whatever
    # the model's scores (a sharp model's probabilities span many orders of magnitude, so
    # multiplying one moved nothing); a category boost covers its sub-categories
    # ("electronics" boosts "electronics.smartphone").
    "HIDE_ITEMS": [],
    "PIN_ITEMS": {},
    "BOOST": {},
    # Sponsored placements: a promoted item may take one labelled slot (at POSITION, 0-based)
    # of a "for you" list, only when this shopper's model probability for it is at least
    # MIN_PROBABILITY times the uniform one (1 / catalogue size). No model, no sponsored slot.
    "SPONSORED": {"ITEMS": [], "POSITION": 2, "MIN_PROBABILITY": 5.0},
    # Trending = time-decayed popularity over the last TRENDING_DAYS of activity (counted
    # back from the newest event), with this half-life; recomputed at most every
    # POPULARITY_CACHE_SECONDS. Event weights: view 1, click 1, cart 3, purchase 5.
    "TRENDING_DAYS": 7,
    "TRENDING_HALF_LIFE_HOURS": 24.0,
    "POPULARITY_CACHE_SECONDS": 300,
    # Bought together: an item joins another's list only on evidence from at least this many
    # distinct shoppers (bought, or put in the cart, in the same visit; bought after viewing
    # it), and a category's complements only on as many: one fake basket moves nothing.
    "BOUGHT_TOGETHER_MIN_SHOPPERS": 2,
    # Similar items: at most this many new products (no events the model learned from) of the
    # item's category, nearest in price, join each list from its middle; 0: none.
    "SIMILAR_NEW_ITEMS": 2,
    # --- Experiments and exploration (serving/experiments.py, serving/exploration.py) ---
    # A/B tests are set up in the admin (Experiments). Each running arm's model version is
    # loaded once per process; at most MAX_LOADED_VERSIONS besides the active one stay in
    # memory (each about the active model's size). The task recommendations.experiment_outcomes
    # (hourly in the demo's beat schedule) writes each experiment's figures of the day.
    "EXPERIMENTS": {"MAX_LOADED_VERSIONS": 3},
    # Exploration (serving/exploration.py): a list of SCENARIOS is, with probability SHARE, a
    # random ordering of its ranking's best limit + POOL items; every impression logs the
    # chance each shown item had of its place, so logged traffic can estimate another
    # version's click-through (off-policy evaluation, shown on each version's admin page).
    # 0 turns it off (the logged chances are then all 1, and only versions that rank like the
    # one serving can be estimated). See BENCHMARKS.md *Experiments* for what it costs.
    "EXPLORATION": {"SHARE": 0.0, "POOL": 20, "SCENARIOS": ["for_you"]},
    # Per-shopper API responses are cached this many seconds (a new event of theirs
    # invalidates them at once); 0 turns the cache off.
    "RESPONSE_CACHE_SECONDS": 30,
    # Most events one POST to the batch events API may carry.
    "API_MAX_BATCH_EVENTS": 100,
    # Rate limits of the API in DRF's "N/second|minute|hour|day" format; None: unlimited.
    # Over a limit: HTTP 429 with Retry-After. "events" counts events (not requests) per caller
    # (the user, else the device), "events_per_address" the events of every caller of one
    # network together (a new device id does not reset it); "suggest" counts requests per
    # caller and "suggest_per_address" per network; "devices" counts new device ids per network.
    "API_THROTTLE_RATES": {
        "events": "600/minute",
        "events_per_address": "3000/minute",
        "suggest": "600/minute",
        "suggest_per_address": "3000/minute",
        "devices": "30/hour",
    },
    # Reverse proxies (load balancer, CDN) in front of the site that append the client's
    # address to X-Forwarded-For. 0: that header is ignored (anyone can write it) and the
    # connection's address is the client's; set it to how many proxies you run. Addresses are
    # only ever hashed into cache keys (recommendations/network.py), never stored.
    "TRUSTED_PROXIES": 0,
    # --- Privacy ---
    # Events older than this many days are deleted by the periodic task
    # recommendations.purge_expired_events (None keeps them). Erasure on request:
    # manage.py recommendations_forget_user, or the admin action on events.
    "RETENTION_DAYS": None,
    # --- Search suggestions (recommendations.suggest); give only the keys you change ---
    "SUGGEST": {
        # Searches count with this half-life (days), over this many days of the log.
        "HALF_LIFE_DAYS": 30.0,
        "WINDOW_DAYS": 365,
        # Suggestions returned by default, and candidates read from the index to re-rank.
        "LIMIT": 8,
        "CANDIDATES": 100,
        # Personalization: weight of the shopper's category affinity (what they browsed, and
        # the model's view of them) and of their own earlier searches, against log(popularity).
        "AFFINITY_WEIGHT": 3.0,
        "OWN_SEARCH_WEIGHT": 3.0,
        # Seconds between checks for a rebuilt index; seconds a rebuild waits after a search
        # (searches arriving meanwhile join the same rebuild).
        "CHECK_INTERVAL": 5.0,
        "REBUILD_DELAY": 60,
        # Search results: blend the text match with the shopper's model score (0 = text only).
        "RERANK_WEIGHT": 0.5,
        # Who may make a suggestion for everyone (suggest/moderation.py): a logged query needs
        # MIN_SEARCHES searches by MIN_SHOPPERS distinct visitors or devices (each visit's
        # repeats count once); no suggestion has more than MAX_WORDS words, a URL, an e-mail
        # address, a phone number, markup, or a word of DENYLIST (matched after normalizing).
        "MIN_SEARCHES": 5,
        "MIN_SHOPPERS": 3,
        "MAX_WORDS": 8,
        "DENYLIST": [],
    },
}

IMPORT_STRINGS = ("RECORDER", "CATALOGUE_ADAPTER", "CONSENT_CHECK")


class AppSettings:
    """Lazy view of ``settings.RECOMMENDATIONS`` merged over ``DEFAULTS``."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self._reload_hooks: list[Callable[[], Any]] = []

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "RECOMMENDATIONS", None) or {}
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Unknown RECOMMENDATIONS setting: {name!r}")
        if name not in self._cache:
            value = self.user_settings.get(name, DEFAULTS[name])
            if isinstance(DEFAULTS[name], dict) and isinstance(value, dict) and DEFAULTS[name]:
                value = {**DEFAULTS[name], **value}  # nested settings: give only what you change
            self._cache[name] = value
        return self._cache[name]

    def get_class(self, name: str) -> Any:
        """Import the object an import-string setting names (None stays None)."""
        value = getattr(self, name)
        if value is None or not isinstance(value, str):
            return value
        return import_string(value)

    def reload(self) -> None:
        self._cache.clear()
        for hook in self._reload_hooks:
            hook()

    def on_reload(self, hook: Callable[[], Any]) -> None:
        """Call ``hook`` whenever the settings change (objects built from them drop their cache)."""
        self._reload_hooks.append(hook)


app_settings = AppSettings()


def _reload_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "RECOMMENDATIONS":
        app_settings.reload()


setting_changed.connect(_reload_on_change)
