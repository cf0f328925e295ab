"""Human-readable reports of a build: the HTML data card and the inline SVG charts it draws."""
