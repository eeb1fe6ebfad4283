"""URLs of the shop, in the ``shop`` namespace. Names and kwargs are tracked by name, keep them.

Account pages live in ``shop.urls_accounts``, included without a namespace (``login``...).
"""

from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("category/<str:slug>/", views.CategoryView.as_view(), name="category"),
    path("product/<int:pk>/", views.product_detail, name="product"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/<int:pk>/", views.cart_add, name="cart_add"),
    path("checkout/", views.checkout, name="checkout"),
    path("order/<int:pk>/", views.order_detail, name="order"),
]
