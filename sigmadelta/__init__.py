"""sigmadelta placeholder"""
