# Entry point of the Hub Space when this metric is published (`evaluate-cli` layout).
import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("execution_accuracy")
launch_gradio_widget(module)
