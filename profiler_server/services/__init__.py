"""The service's logic, one module per concept; routes only translate HTTP to these calls."""
