"""Importers: every format, validation with file/line/field, all-or-nothing, idempotence."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommendations.capture.importers import ImportRowError, import_events, parse_file
from recommendations.models import Event

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DEMO_SLICE = ROOT / "shop" / "demo_data" / "rees46_oct2019_slice.csv.gz"
HEADER = "timestamp,session_id,user_id,event,item_id,query,category_id,price,quantity\n"


def write(tmp_path: Path, text: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_canonical_file_is_imported_with_every_field(tmp_path):
    path = write(
        tmp_path,
        HEADER
        + "2024-03-01T10:00:00Z,s1,u1,view,101,,phones,199.99,\n"
        + "1709287260,s1,u1,search,,red shoes,,,\n"
        + "2024-03-01 10:02:00,s1,,cart,101,,phones,199.99,2\n"
        + "2024-03-01T10:03:00+01:00,s1,u1,purchase,101,,,199.99,2\n",
    )
    result = import_events(path)
    assert (result.rows, result.added) == (4, 4)
    purchase, view, search, cart = Event.objects.order_by("timestamp")  # +01:00 sorts first
    assert (view.event_type, view.item_id, view.category_id, view.price) == (
        "view",
        "101",
        "phones",
        Decimal("199.99"),
    )
    assert (view.session_key, view.external_user_id, view.source) == ("s1", "u1", "import:canonical")
    assert (search.query, search.timestamp.isoformat()) == ("red shoes", "2024-03-01T10:01:00+00:00")
    assert (cart.quantity, cart.external_user_id) == (2, "")
    assert purchase.timestamp.isoformat() == "2024-03-01T09:03:00+00:00"  # converted to UTC


def test_importing_the_same_file_twice_adds_nothing(tmp_path):
    path = write(tmp_path, HEADER + "2024-03-01T10:00:00Z,s1,,view,1,,,,\n" * 3)  # three identical views
    assert import_events(path).added == 3
    again = import_events(path)
    assert (again.rows, again.added, again.already_present) == (3, 0, 3)
    assert Event.objects.count() == 3


@pytest.mark.parametrize(
    ("row", "line", "field", "message"),
    [
        ("2024-03-01T10:00:00Z,s1,,teleport,1,,,,", 3, "event", "unknown event 'teleport'"),
        ("2024-03-01T10:00:00Z,s1,,view,,,,,", 3, "item_id", "needs an item id"),
        ("yesterday,s1,,view,1,,,,", 3, "timestamp", "neither ISO 8601 nor Unix seconds"),
        ("2024-02-30T10:00:00Z,s1,,view,1,,,,", 3, "timestamp", ""),
        ("2024-03-01T10:00:00Z,s1,,view,1,,,-3,", 3, "price", "not a valid price"),
        ("2024-03-01T10:00:00Z,s1,,view,1,,,abc,", 3, "price", "not a number"),
        ("2024-03-01T10:00:00Z,s1,,cart,1,,,,1.5", 3, "quantity", "whole number"),
        ("2024-03-01T10:00:00Z,s1,,search,,,,,", 3, "query", "needs a query"),
        ("2024-03-01T10:00:00Z,s 1,,view,1,,,,", 3, "session_id", "is not an id"),
        ("2024-03-01T10:00:00Z,s1,,view,1,,,,,extra", 3, None, "more values than header columns"),
    ],
)
def test_a_bad_row_stops_the_import_naming_file_line_and_field(tmp_path, row, line, field, message):
    path = write(tmp_path, HEADER + "2024-03-01T09:00:00Z,s0,,view,7,,,,\n" + row + "\n")
    with pytest.raises(ImportRowError) as error:
        import_events(path)
    assert (error.value.line, error.value.field) == (line, field)
    assert str(error.value).startswith(f"events.csv, line {line}" + (f", field '{field}'" if field else ""))
    assert message in str(error.value)
    assert not Event.objects.exists()  # the good first row was not half-imported


def test_missing_columns_are_reported(tmp_path):
    path = write(tmp_path, "when,what\n2024-01-01,view\n")
    with pytest.raises(ImportRowError, match=r"events.csv, line 1, field 'timestamp': missing column"):
        import_events(path)


def test_command_reports_a_bad_row_as_a_command_error(tmp_path):
    path = write(tmp_path, HEADER + "2024-03-01T10:00:00Z,s1,,view,1,,,,\nnot-a-time,s1,,view,2,,,,\n")
    with pytest.raises(CommandError, match=r"Nothing imported from .*events.csv, line 3, field 'timestamp'"):
        call_command("recommendations_import_events", str(path))
    assert not Event.objects.exists()


def test_command_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("recommendations_import_events", str(tmp_path / "nope.csv"))


def test_command_prints_progress_and_summary(tmp_path, capsys):
    path = write(tmp_path, HEADER + "2024-03-01T10:00:00Z,s1,,view,1,,,,\n")
    call_command("recommendations_import_events", str(path), "--format", "canonical")
    call_command("recommendations_import_events", str(path))
    out = capsys.readouterr().out
    assert "1 rows, 1 new events, 0 already imported" in out
    assert "1 rows, 0 new events, 1 already imported" in out


def test_events_of_items_outside_the_catalogue_are_kept(tmp_path):
    path = write(tmp_path, HEADER + "2024-03-01T10:00:00Z,s1,,purchase,discontinued-42,,,10,1\n")
    import_events(path)
    assert Event.objects.get().item_id == "discontinued-42"


def test_rees46_demo_slice_imports_completely():
    result = import_events(DEMO_SLICE, "rees46")
    assert result.rows == result.added == 11562
    counts = dict(
        Event.objects.values_list("event_type").annotate(n=__import__("django").db.models.Count("id"))
    )
    assert set(counts) == {"view", "cart", "purchase"}
    phone = Event.objects.filter(category_id="electronics.smartphone").first()
    assert phone is not None and phone.price is not None and phone.session_key
    assert import_events(DEMO_SLICE, "rees46").added == 0


def test_rees46_row_mapping(tmp_path):
    path = write(
        tmp_path,
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n"
        "2019-10-01 00:00:05 UTC,remove_from_cart,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n"
        "2019-10-01 00:00:09 UTC,cart,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333dfbd\n",
    )
    view, cart = parse_file(path, "rees46")
    assert (view.category_id, view.external_user_id, view.session_key) == (
        "2103807459595387724",
        "541312140",
        "72d76fde",
    )
    assert (cart.category_id, cart.quantity, cart.price) == ("appliances.water_heater", 1, Decimal("33.20"))


def test_diginetica_views_and_purchases(tmp_path):
    views = write(
        tmp_path,
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n",
        "views.csv",
    )
    purchases = write(
        tmp_path,
        "sessionId;userId;timeframe;eventdate;ordernumber;itemId\n150;18278;17100868;2016-05-06;16421;25911\n",
        "p.csv",
    )
    first, second = parse_file(views, "diginetica")
    assert (first.event_type, first.external_user_id, first.item_id) == ("view", "", "81766")
    assert first.timestamp.isoformat() == "2016-05-09T00:08:46.309000+00:00"
    assert second.timestamp > first.timestamp
    [purchase] = parse_file(purchases, "diginetica")
    assert (purchase.event_type, purchase.external_user_id, purchase.session_key) == (
        "purchase",
        "18278",
        "150",
    )
    categories = write(tmp_path, "itemId;categoryId\n1;2\n", "product-categories.csv")
    with pytest.raises(ImportRowError, match="holds no events"):
        parse_file(categories, "diginetica")


def test_groceries_both_layouts(tmp_path):
    wide = write(tmp_path, "citrus fruit,semi-finished bread\nwhole milk\n", "groceries.csv")
    long = write(
        tmp_path, "basket_id,item\n1,citrus fruit\n1,semi-finished bread\n2,whole milk\n", "long.csv"
    )
    for path in (wide, long):
        rows = parse_file(path, "groceries")
        assert [(r.session_key, r.item_id, r.event_type) for r in rows] == [
            ("basket-1", "citrus-fruit", "purchase"),
            ("basket-1", "semi-finished-bread", "purchase"),
            ("basket-2", "whole-milk", "purchase"),
        ]


def test_movielens_and_wands(tmp_path):
    ratings = write(tmp_path, "196\t242\t3\t881250949\n186\t302\t3\t891717742\n", "u.data")
    first, _ = parse_file(ratings, "movielens")
    assert (first.external_user_id, first.item_id, first.timestamp.year) == ("196", "242", 1997)
    bad = write(tmp_path, "196 242 3 881250949\n", "bad.data")
    with pytest.raises(ImportRowError, match=r"bad\.data, line 1"):
        parse_file(bad, "movielens")
    queries = write(
        tmp_path, 'query_id,query,query_class\n0,salon chair,Massage Chairs\n1,"desk, white",Desks\n', "q.csv"
    )
    chair, desk = parse_file(queries, "wands")
    assert (chair.event_type, chair.query, chair.category_id) == ("search", "salon chair", "Massage Chairs")
    assert desk.query == "desk, white"


def test_gzip_files_are_read(tmp_path):
    path = tmp_path / "events.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(HEADER + "2024-03-01T10:00:00Z,s1,,view,1,,,,\n")
    assert import_events(path).added == 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside this checkout")
@pytest.mark.parametrize(
    ("fmt", "relative", "rows"),
    [
        ("diginetica", "diginetica/train-item-views-sample.csv", 10446),
        ("wands", "wands_queries/query.csv", 384),
        ("groceries", "groceries/groceries_long.csv", 43367),
    ],
)
def test_real_shared_files_parse(fmt, relative, rows):
    assert len(parse_file(SHARED / relative, fmt)) == rows
