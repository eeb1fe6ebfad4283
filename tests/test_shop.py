"""The demo shop on its own: pages, cart, checkout, order privacy, accounts and its signals."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse

from shop.models import Category, Order, Product
from shop.signals import order_placed, product_added_to_cart
from tests import factories

pytestmark = pytest.mark.django_db


def make_category(slug: str = "electronics.smartphone", name: str = "Smartphone") -> Category:
    return factories.category(slug, name)


def make_product(**fields) -> Product:
    return factories.product(**{"description": "A phone for testing.", **fields})


def make_user(username: str = "alice", password: str = "correct-horse-battery"):
    return factories.user(username, password)


def add_to_cart(client, product: Product, quantity: int = 1):
    return client.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": quantity})


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def received():
    """Every ``product_added_to_cart`` and ``order_placed`` sent during the test, with its kwargs."""
    calls: list[tuple[str, dict]] = []

    def on_cart(sender, **kwargs):
        calls.append(("cart", {"sender": sender, **kwargs}))

    def on_order(sender, **kwargs):
        calls.append(("order", {"sender": sender, **kwargs}))

    product_added_to_cart.connect(on_cart)
    order_placed.connect(on_order)
    yield calls
    product_added_to_cart.disconnect(on_cart)
    order_placed.disconnect(on_order)


# Browsing


def test_home_lists_categories_and_products(client):
    product = make_product(name="Acme Smartphone A-1234")
    response = client.get(reverse("shop:home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Smartphone A-1234" in html
    assert 'href="/category/electronics/"' in html
    assert reverse("shop:product", kwargs={"pk": product.pk}) in html
    assert "REES46 Marketing Platform / Open CDP" in html


def test_home_on_an_empty_catalogue(client):
    response = client.get(reverse("shop:home"))
    assert response.status_code == 200
    assert "shop_load_demo" in response.content.decode()


def test_top_level_category_lists_its_subcategories_products(client):
    phone = make_product(name="Phone One")
    tv = make_product(name="Telly Two", category=make_category("electronics.video.tv", "TV"))
    make_product(name="Sofa Three", category=make_category("furniture.living_room.sofa", "Sofa"))

    response = client.get(reverse("shop:category", kwargs={"slug": "electronics"}))
    assert response.status_code == 200
    assert set(response.context["products"]) == {phone, tv}

    leaf = client.get(reverse("shop:category", kwargs={"slug": "electronics.video.tv"}))
    assert leaf.status_code == 200
    assert list(leaf.context["products"]) == [tv]
    assert "Electronics" in leaf.content.decode()  # breadcrumb


def test_category_is_paginated_by_24(client):
    for number in range(30):
        make_product(name=f"Phone {number:02d}")
    url = reverse("shop:category", kwargs={"slug": "electronics.smartphone"})
    first = client.get(url)
    assert len(first.context["products"]) == 24
    assert first.context["paginator"].count == 30
    assert len(client.get(url, {"page": 2}).context["products"]) == 6


def test_unknown_category_is_404(client):
    assert client.get(reverse("shop:category", kwargs={"slug": "no.such"})).status_code == 404


def test_product_page(client):
    product = make_product(name="Acme Smartphone A-0042", price=Decimal("1234.5"), stock=3)
    response = client.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Smartphone A-0042" in html
    assert "$1,234.50" in html
    assert "3 left" in html
    assert reverse("shop:cart_add", kwargs={"pk": product.pk}) in html


def test_inactive_product_is_404_and_hidden_from_lists(client):
    product = make_product(name="Retired Phone", is_active=False)
    assert client.get(reverse("shop:product", kwargs={"pk": product.pk})).status_code == 404
    category = client.get(reverse("shop:category", kwargs={"slug": "electronics"}))
    assert product not in category.context["products"]
    search = client.get(reverse("shop:search"), {"q": "retired"})
    assert search.context["paginator"].count == 0
    assert "Retired Phone" not in client.get(reverse("shop:home")).content.decode()


def test_out_of_stock_product_shows_it_and_cannot_be_added(client, received):
    product = make_product(stock=0)
    page = client.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert "Out of stock" in page.content.decode()
    assert reverse("shop:cart_add", kwargs={"pk": product.pk}) not in page.content.decode()

    response = add_to_cart(client, product)
    assert response.status_code == 302
    assert any("out of stock" in message for message in messages_of(response))
    assert client.session.get("cart", {}) == {}
    assert received == []


# Search


@pytest.mark.parametrize("query", ["acme", "ACME smartphone", "sturdy", "Telephone"])
def test_search_matches_name_brand_description_and_category(client, query):
    product = make_product(
        name="Acme Smartphone A-0007",
        description="A sturdy handset.",
        category=make_category("electronics.telephone", "Telephone"),
    )
    make_product(name="Other Thing", brand="Zed", description="Nothing alike.")
    response = client.get(reverse("shop:search"), {"q": query})
    assert response.status_code == 200
    assert list(response.context["object_list"]) == [product]
    assert response.context["paginator"].count == 1


def test_search_without_results_is_not_a_dead_end(client):
    from recommendations.suggest import loader
    from recommendations.suggest.stats import rebuild

    product = make_product()
    factories.event("view", item_id=str(product.pk), session_key="someone")  # something trends
    response = client.get(reverse("shop:search"), {"q": "unobtainium"})
    assert response.status_code == 200
    assert response.context["paginator"].count == 0
    page = response.content.decode()
    assert "Nothing matches" in page and 'data-scenario="trending"' in page and product.name in page

    rebuild()  # the catalogue's names become suggestions: a typo gets a way out
    loader.reset()  # this process reads the new index now, not at its next check
    typo = client.get(reverse("shop:search"), {"q": "smartphne"}).content.decode()
    assert "Try: " in typo and '<a href="?q=Smartphone">Smartphone</a>' in typo


def test_search_with_an_empty_query_shows_a_hint(client):
    make_product()
    response = client.get(reverse("shop:search"), {"q": "   "})
    assert response.status_code == 200
    assert response.context["paginator"].count == 0
    assert "Type a product" in response.content.decode()


# Cart


def test_add_to_cart_sends_the_signal_with_the_documented_kwargs(client, received):
    product = make_product(price=Decimal("19.90"))
    response = add_to_cart(client, product, 2)
    assert response.status_code == 302
    assert response.url == reverse("shop:cart")
    assert client.session["cart"] == {str(product.pk): 2}

    assert len(received) == 1
    name, kwargs = received[0]
    assert name == "cart"
    assert kwargs["sender"] is Product
    assert kwargs["item"] == product
    assert kwargs["quantity"] == 2
    assert kwargs["price"] == Decimal("19.90")
    assert kwargs["request"].path == reverse("shop:cart_add", kwargs={"pk": product.pk})


def test_cart_page_lists_lines_and_total(client):
    phone = make_product(name="Phone", price=Decimal("100.00"))
    case = make_product(name="Case", price=Decimal("5.25"))
    add_to_cart(client, phone, 2)
    add_to_cart(client, case)
    response = client.get(reverse("shop:cart"))
    assert response.status_code == 200
    assert response.context["cart"].total == Decimal("205.25")
    assert "$205.25" in response.content.decode()
    assert 'class="badge" aria-label="3 items">3<' in response.content.decode()


def test_cannot_add_more_than_the_stock(client, received):
    product = make_product(stock=2)
    add_to_cart(client, product, 2)
    response = add_to_cart(client, product, 1)
    assert any("only 2" in message for message in messages_of(response))
    assert client.session["cart"] == {str(product.pk): 2}
    assert len(received) == 1


def test_cart_update_and_remove(client):
    product = make_product(stock=5)
    add_to_cart(client, product)
    url = reverse("shop:cart")

    client.post(url, {"product_id": product.pk, "quantity": 3, "action": "update"})
    assert client.session["cart"] == {str(product.pk): 3}

    response = client.post(url, {"product_id": product.pk, "quantity": 9, "action": "update"})
    assert client.session["cart"] == {str(product.pk): 5}
    assert any("Only 5" in message for message in messages_of(response))

    client.post(url, {"product_id": product.pk, "quantity": 5, "action": "remove"})
    assert client.session["cart"] == {}
    assert "Your cart is empty" in client.get(url).content.decode()


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(client):
    response = client.get(reverse("shop:checkout"))
    assert response.status_code == 302
    assert response.url == reverse("shop:cart")


# Checkout and orders


def test_checkout_places_the_order(client, received, django_capture_on_commit_callbacks):
    phone = make_product(price=Decimal("100.00"), stock=5)
    case = make_product(price=Decimal("5.25"), stock=1)
    add_to_cart(client, phone, 2)
    add_to_cart(client, case)
    assert client.get(reverse("shop:checkout")).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("shop:checkout"), {"email": "shopper@example.com"})

    order = Order.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("shop:order", kwargs={"pk": order.pk})
    assert order.user is None
    assert order.email == "shopper@example.com"
    assert order.total == Decimal("205.25")
    assert {(line.product, line.quantity, line.price) for line in order.lines.all()} == {
        (phone, 2, Decimal("100.00")),
        (case, 1, Decimal("5.25")),
    }
    phone.refresh_from_db()
    case.refresh_from_db()
    assert (phone.stock, case.stock) == (3, 0)
    assert client.session.get("cart", {}) == {}

    orders_sent = [kwargs for name, kwargs in received if name == "order"]
    assert len(orders_sent) == 1
    assert orders_sent[0]["sender"] is Order
    assert orders_sent[0]["order"] == order
    assert orders_sent[0]["request"].path == reverse("shop:checkout")

    page = client.get(response.url)
    assert page.status_code == 200
    assert f"Order #{order.pk}" in page.content.decode()


def test_order_placed_waits_for_the_commit(client, received, django_capture_on_commit_callbacks):
    add_to_cart(client, make_product())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("shop:checkout"), {"email": "shopper@example.com"})
    assert [name for name, _ in received] == ["cart"]
    assert len(callbacks) == 1


def test_checkout_refuses_when_the_stock_ran_out(client, received):
    product = make_product(stock=3)
    add_to_cart(client, product, 3)
    Product.objects.filter(pk=product.pk).update(stock=1)

    response = client.post(reverse("shop:checkout"), {"email": "shopper@example.com"})
    assert response.status_code == 302
    assert response.url == reverse("shop:cart")
    assert any("only 1" in message for message in messages_of(response))
    assert not Order.objects.exists()
    product.refresh_from_db()
    assert product.stock == 1
    assert client.session["cart"] == {str(product.pk): 3}


def test_checkout_needs_a_valid_email(client):
    add_to_cart(client, make_product())
    response = client.post(reverse("shop:checkout"), {"email": "not-an-email"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Order.objects.exists()


def test_signed_in_checkout_belongs_to_the_user(client):
    user = make_user()
    client.force_login(user)
    add_to_cart(client, make_product())
    client.post(reverse("shop:checkout"), {"email": "alice@example.com"})
    order = Order.objects.get()
    assert order.user == user

    elsewhere = type(client)()
    elsewhere.force_login(user)
    assert elsewhere.get(reverse("shop:order", kwargs={"pk": order.pk})).status_code == 200


def test_order_page_is_hidden_from_other_shoppers(client):
    add_to_cart(client, make_product())
    guest = client.get(reverse("shop:checkout")).content.decode()
    assert '<p class="note">Checking out as a guest.' in guest  # one paragraph (its CSS: display block)
    response = client.post(reverse("shop:checkout"), {"email": "shopper@example.com"})
    page = client.get(response.url)
    assert page.status_code == 200
    assert page.content.decode().count("Thank you") == 1, "the flash message and the page said it twice"

    stranger = type(client)()
    assert stranger.get(response.url).status_code == 404
    stranger.force_login(make_user("mallory"))
    assert stranger.get(response.url).status_code == 404


# Accounts


def test_signup_creates_the_user_and_logs_in(client):
    assert client.get(reverse("signup")).status_code == 200
    response = client.post(
        reverse("signup"),
        {"username": "bob", "password1": "a-long-Passphrase-42", "password2": "a-long-Passphrase-42"},
    )
    assert response.status_code == 302
    assert response.url == reverse("shop:home")
    user = get_user_model().objects.get(username="bob")
    assert client.session["_auth_user_id"] == str(user.pk)


def test_login_and_logout(client):
    make_user("carol", "correct-horse-battery")
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "carol", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert response.url == reverse("shop:home")

    home = client.get(reverse("shop:home")).content.decode()
    assert "carol" in home
    assert f'action="{reverse("logout")}" method="post"' in home

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_login_keeps_the_cart(client):
    make_user("dave", "correct-horse-battery")
    product = make_product()
    add_to_cart(client, product)
    client.post(reverse("login"), {"username": "dave", "password": "correct-horse-battery"})
    assert client.session["cart"] == {str(product.pk): 1}


# Demo loader


def test_demo_loader_builds_the_same_catalogue_twice():
    call_command("shop_load_demo", "--no-events", stdout=StringIO())
    first = list(
        Product.objects.order_by("pk").values_list("pk", "name", "brand", "category__slug", "price", "stock")
    )
    output = StringIO()
    call_command("shop_load_demo", "--no-events", stdout=output)

    assert "0 new" in output.getvalue()
    assert first == list(
        Product.objects.order_by("pk").values_list("pk", "name", "brand", "category__slug", "price", "stock")
    )
    assert len(first) == 2644
    phone = Product.objects.select_related("category__parent").get(pk=1005115)
    assert phone.category.slug == "electronics.smartphone"
    assert phone.category.parent.slug == "electronics"
    assert phone.name == "Apple Smartphone A-5115"
    assert Category.objects.get(slug="furniture.kitchen.chair").name == "Kitchen Chair"
    assert get_user_model().objects.filter(username="demo", is_staff=False).exists()


def test_every_page_has_a_favicon(client):
    assert 'rel="icon"' in client.get(reverse("shop:home")).content.decode()
    response = client.get("/favicon.ico")  # what browsers ask for, admin pages included
    assert response.status_code == 301 and response["Location"].endswith("shop/favicon.svg")
