"""The package, as delivery writes it and the inbox reads it: table, record, types, JSON.

The two domains share this shape; keeping it here (and not in delivery) lets
delivery place packages in the inbox without the inbox importing delivery.
"""
