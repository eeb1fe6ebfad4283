"""Forms of the shop: quantities for the cart, and the checkout's contact details."""

from django import forms


class AddToCartForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=99, initial=1)


class CartLineForm(forms.Form):
    """One cart line's new quantity; zero removes the line."""

    product_id = forms.IntegerField(widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=0, max_value=99)


class CheckoutForm(forms.Form):
    email = forms.EmailField(help_text="For the order confirmation. This demo sends no email.")
