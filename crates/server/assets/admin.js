// Token Router dashboard: the admin page.
