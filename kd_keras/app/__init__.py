"""The kd-keras application: the command line, the demo and its reports.

It imports the library, which never imports it. It needs the `app` extra
(`pip install kd_keras[app]`: matplotlib for the plots, scikit-learn for the
digits dataset).
"""
