"""co-sell sync: the domain logic that keeps AWS Partner Central and HubSpot in step.

Nothing in this package imports Airflow. DAG tasks build API clients through the hooks in
``plugins/cosell_hooks`` and hand them to the functions here.
"""
