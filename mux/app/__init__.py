"""The application: the controller's ownership tree, the switcher and the private runtime directory."""
