"""Pages of the shop: browsing, searching, the cart, checkout and sign-up.

URL names and kwargs are a contract with ``settings.RECOMMENDATIONS["TRACKED_URLS"]``:
``shop:product`` (``pk``), ``shop:category`` (``slug``) and ``shop:search`` (``?q=``, with
the result count in the response context's ``paginator``) are recorded by the middleware.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import CreateView, ListView

from .cart import Cart
from .forms import AddToCartForm, CartLineForm, CheckoutForm
from .models import Category, Order, Product
from .orders import OrderError, can_view_order, place_order
from .search import ranked_results
from .signals import product_added_to_cart

PAGE_SIZE = 24


def home(request: HttpRequest) -> HttpResponse:
    active = Q(children__products__is_active=True)
    categories = (
        Category.objects.filter(parent__isnull=True)
        .annotate(product_count=Count("children__products", filter=active))
        .filter(product_count__gt=0)
        .order_by("-product_count")[:8]
    )
    products = (
        Product.objects.active()
        .filter(stock__gt=0)
        .select_related("category")
        .order_by("-stock", "-created", "id")[:12]
    )
    return render(request, "shop/home.html", {"categories": categories, "products": products})


class CategoryView(ListView):
    """A category's products; a top-level category lists its subcategories' products too."""

    template_name = "shop/category.html"
    paginate_by = PAGE_SIZE
    context_object_name = "products"

    def get_queryset(self) -> QuerySet[Product]:
        self.category = get_object_or_404(Category.objects.select_related("parent"), slug=self.kwargs["slug"])
        return (
            Product.objects.active()
            .filter(Q(category=self.category) | Q(category__parent=self.category))
            .select_related("category")
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        top = self.category.parent or self.category
        subcategories = top.children.filter(products__is_active=True).distinct()
        return super().get_context_data(
            category=self.category, top_category=top, subcategories=subcategories, **kwargs
        )


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.active().select_related("category__parent"), pk=pk)
    return render(
        request,
        "shop/product.html",
        {"product": product, "form": AddToCartForm(), "in_cart": Cart(request.session).quantity_of(pk)},
    )


class SearchView(ListView):
    """Products whose name, brand, description or category name contain every word of ``q``,
    best matches first, re-ranked for the shopper (see ``search.py``)."""

    template_name = "shop/search.html"
    paginate_by = PAGE_SIZE
    context_object_name = "products"

    def get_query(self) -> str:
        return " ".join(self.request.GET.get("q", "").split())[:200]

    def get_queryset(self) -> list[Product]:
        return ranked_results(self.get_query(), self.request)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(query=self.get_query(), **kwargs)
        if context["query"] and not context["paginator"].count:
            context["alternatives"] = alternatives(self.request, context["query"])
        return context


def alternatives(request: HttpRequest, query: str) -> list[Any]:
    """Searches to try when ``query`` found nothing: suggestions for it (a typo corrected)
    and searches shoppers made next, never the query itself; the page works without them."""
    from recommendations.suggest import services as suggestions

    try:
        found = suggestions.suggest(request, query, limit=4) + suggestions.related(query, limit=2)
    except ValueError:  # a query the suggestion service refuses (too long, control characters)
        return []
    seen, result = {query.casefold()}, []
    for suggestion in found:
        if suggestion.text.casefold() not in seen:
            seen.add(suggestion.text.casefold())
            result.append(suggestion)
    return result[:4]


@require_POST
def cart_add(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.active(), pk=pk)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Please choose a quantity between 1 and 99.")
        return redirect(product)
    quantity = form.cleaned_data["quantity"]
    cart = Cart(request.session)
    if not product.in_stock:
        messages.error(request, f"Sorry, “{product.name}” is out of stock.")
        return redirect(product)
    if cart.quantity_of(product.pk) + quantity > product.stock:
        messages.error(request, f"Sorry, only {product.stock} of “{product.name}” in stock.")
        return redirect(product)
    cart.add(product, quantity)
    product_added_to_cart.send(
        sender=Product, request=request, item=product, quantity=quantity, price=product.price
    )
    messages.success(request, f"Added {quantity} x “{product.name}” to your cart.")
    return redirect("shop:cart")


def cart_detail(request: HttpRequest) -> HttpResponse:
    """The cart; a POST changes one line (``action`` is "update" or "remove")."""
    cart = Cart(request.session)
    if request.method == "POST":
        form = CartLineForm(request.POST)
        if form.is_valid():
            product_id = form.cleaned_data["product_id"]
            if request.POST.get("action") == "remove":
                cart.remove(product_id)
                messages.info(request, "Removed from your cart.")
            else:
                _update_line(request, cart, product_id, form.cleaned_data["quantity"])
        else:
            messages.error(request, "Please enter a quantity between 0 and 99.")
        return redirect("shop:cart")
    return render(request, "shop/cart.html", {"cart": cart})


def _update_line(request: HttpRequest, cart: Cart, product_id: int, quantity: int) -> None:
    stock = Product.objects.active().filter(pk=product_id).values_list("stock", flat=True).first()
    if stock is None:
        cart.remove(product_id)
    elif quantity > stock:
        cart.update(product_id, stock)
        messages.warning(request, f"Only {stock} in stock; your cart was adjusted.")
    else:
        cart.update(product_id, quantity)


def checkout(request: HttpRequest) -> HttpResponse:
    cart = Cart(request.session)
    if not cart:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:cart")
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            try:
                order = place_order(request, cart, form.cleaned_data["email"])
            except OrderError as error:
                messages.error(request, str(error))
                return redirect("shop:cart")
            messages.success(request, "Your order has been placed.")
            return redirect(order)
    else:
        email = request.user.email if request.user.is_authenticated else ""
        form = CheckoutForm(initial={"email": email})
    return render(request, "shop/checkout.html", {"cart": cart, "form": form})


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    if not can_view_order(request, order):
        raise Http404("No such order.")
    lines = order.lines.select_related("product__category")
    return render(request, "shop/order.html", {"order": order, "lines": lines})


class SignUpView(CreateView):
    """Create an account and sign straight in, then go back where the shopper came from."""

    form_class = UserCreationForm
    template_name = "registration/signup.html"

    def form_valid(self, form: UserCreationForm) -> HttpResponse:
        user = form.save()
        login(self.request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        messages.success(self.request, f"Welcome, {user.get_username()}!")
        return redirect(self.get_success_url())

    def get_success_url(self) -> str:
        target = self.request.POST.get("next") or self.request.GET.get("next", "")
        if url_has_allowed_host_and_scheme(target, {self.request.get_host()}, self.request.is_secure()):
            return target
        return str(settings.LOGIN_REDIRECT_URL)
